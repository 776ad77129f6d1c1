"""accounts: users, sign-in (short-lived signed access tokens, rotating refresh tokens) and API keys."""
