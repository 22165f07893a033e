"""Understanding providers: offline (default), openai, replay, and hybrid (offline first)."""
