// Placeholder; the hub lands here.
