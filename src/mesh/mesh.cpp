// Placeholder; the mesh lands here.
