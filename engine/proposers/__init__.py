"""Where new candidate programs come from: an LLM, or offline AST mutations."""
