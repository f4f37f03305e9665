"""Keys, EUIs and the device inventory."""
