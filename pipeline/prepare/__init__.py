"""The prepare stage: faces detected and aligned, contact sheets, low-resolution inputs."""
