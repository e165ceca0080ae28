"""Routing strategies: filters pick candidates, a strategy scores them and picks one."""
