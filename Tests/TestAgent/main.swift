print("yonder-test-agent: not built yet")
