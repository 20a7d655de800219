"""The warm watch service (`autophase watch`), its live page and its online learner."""
