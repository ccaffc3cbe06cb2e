print("yonder-bench: not built yet")
