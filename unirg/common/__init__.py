"""Helpers shared by the service, the clients and the trainer; standard library only."""
