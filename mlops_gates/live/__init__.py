"""The production half: canary and A/B analysis on live traffic, with bounds valid at every look."""
