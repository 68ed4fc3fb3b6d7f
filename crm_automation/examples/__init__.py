"""Example rules shipped with the package (config/rules.example.yaml links here)."""
