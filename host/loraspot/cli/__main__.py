from loraspot.cli.main import run

run()
