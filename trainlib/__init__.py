"""What runs train.py and evaluate.py: start-up (startup), the command line
(cli), the run (run), the run directory (rundir), videos and plots (media)."""
