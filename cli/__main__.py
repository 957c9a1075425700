from tlcli.main import entry

entry()
