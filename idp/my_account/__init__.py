"""My account (issue 15): what a person can see and change about themselves."""
