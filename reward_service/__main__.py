from reward_service.cli import app

app(prog_name="unirg")
