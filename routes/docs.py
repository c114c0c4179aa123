from controller import docs

RULES = [("GET", "/openapi.json", docs.openapi)]
