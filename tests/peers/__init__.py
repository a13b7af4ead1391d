"""Test peers: a real upstream OpenID provider (npm oidc-provider) and a hostile one."""
