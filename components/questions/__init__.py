"""Questions from documents: answer spans, prompts, filters, the run, the report (docs/questions.md)."""
