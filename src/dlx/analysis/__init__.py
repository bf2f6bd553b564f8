"""Reading finished runs: reports, figures, studies, HParams columns, diffs."""
