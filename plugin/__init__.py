"""pytest plugin for target-profile-mock."""
