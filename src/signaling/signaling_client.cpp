// Placeholder; the signaling client lands here.
