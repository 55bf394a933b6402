"""Drivers that put a decision where reviewers look: GitHub, GitLab, or the local terminal."""
