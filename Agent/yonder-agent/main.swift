print("yonder-agent: not built yet")
