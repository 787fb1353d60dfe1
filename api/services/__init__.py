"""What the route handlers call: spec checks against the filesystem, job submission, uploads."""
