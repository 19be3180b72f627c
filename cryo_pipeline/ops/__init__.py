"""Pure numpy/torch kernels: no file I/O, no config objects, no logging set-up."""
