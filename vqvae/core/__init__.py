"""Family-agnostic plumbing: config, checkpoints and run directories, the run lifecycle, the Trainer and its Task
interface, torchrun helpers, errors, plots shared by every family. Imports no family."""
