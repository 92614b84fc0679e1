"""HiPPO: recurrent memory with optimal polynomial projections (Gu et al., NeurIPS 2020).

Pure torch. Public API:

- :func:`transition` -- continuous-time matrices ``(A, B)`` of each measure.
- :func:`discretize`, :func:`lti_step` -- discrete LTI memory.
- :func:`legs_init`, :func:`legs_step`, :func:`legs_step_dense` -- the time-varying LegS update.
- :func:`project` -- the memory of a whole sequence; :func:`reconstruct` -- the history back.
- :mod:`hippo.funcapprox` -- online function approximation (``approximate_function``).
- :mod:`hippo.fftconv` -- the causal FFT convolution (``causal_conv``), one implementation.
- :mod:`hippo.ssm` -- deep-SSM kernels: S4D inits, diagonal and dense (LSSL) kernels, steps.
- :mod:`hippo.scan` -- Mamba's selective scan (compiled C++ on CPU; torch with a hand-written
  backward elsewhere; sequential reference).
- :mod:`hippo.linalg` -- ``solve``: batched solves safe under ``torch.set_num_threads(n > 1)``.
"""

from hippo.discretize import METHODS, discretize, lti_step
from hippo.legs import legs_init, legs_step, legs_step_dense, legs_step_scan
from hippo.project import project
from hippo.reconstruct import reconstruct
from hippo.transition import MEASURES, transition

__all__ = [
    "MEASURES",
    "METHODS",
    "discretize",
    "legs_init",
    "legs_step",
    "legs_step_dense",
    "legs_step_scan",
    "lti_step",
    "project",
    "reconstruct",
    "transition",
]
