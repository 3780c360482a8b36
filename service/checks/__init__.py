"""``tailor test``: rule tests that marketers write, kept in ``checks/`` next to the bundle."""
