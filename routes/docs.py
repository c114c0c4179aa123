from controller import docs

RULES = [
    ("GET", "/openapi.json", docs.openapi),
    ("GET", "/asyncapi.yaml", docs.asyncapi),
]
