"""Studies that chose a default by a rule written first (mitigations, v3, GAN settings, precision, the
classifier), and the papers reproduced and audited."""
