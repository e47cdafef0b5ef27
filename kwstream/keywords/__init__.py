"""What to spot: the scorer protocol and default layers (base), the keyword set with its one
threshold map (keyword_set), typed keywords through the CTC head (ctc), homophones, enrolled
keywords (enrolled/) and trained classifier heads (classifier/)."""
