from unirg.cli import app

app(prog_name="unirg")
