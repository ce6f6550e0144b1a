"""Who a request comes from (principals, sessions) and the certificates that prove it."""
