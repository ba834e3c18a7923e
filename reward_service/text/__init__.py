"""Text processing shared by the rule-based scorers: tokenisers, sentence splitting, report labelers."""
