// placeholder until the web client lands
