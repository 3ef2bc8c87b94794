# Sourced by the bench drivers. libtorch takes whatever provides libblas.so.3: a Python process gets the system's
# alternative (Debian's default is the pthread build of OpenBLAS), while our engine loads the OpenMP build when it is
# installed (src/Torch/Interop/Native.cs, MLNETEXT_BLAS). These helpers let a driver give Python either one.
OPENMP_BLAS="/usr/lib/$(uname -m)-linux-gnu/openblas-openmp"

# blas_env system|openmp: the command prefix that starts a process on that BLAS ("env" alone for the system's).
blas_env() {
  case "$1" in
    system) echo env ;;
    openmp)
      [[ -f "$OPENMP_BLAS/libblas.so.3" ]] || { echo "error: $OPENMP_BLAS/libblas.so.3 not found (apt-get install libopenblas0-openmp)" >&2; return 2; }
      echo env "LD_LIBRARY_PATH=$OPENMP_BLAS${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" ;;
    *) echo "error: a BLAS is 'system' or 'openmp'; got '$1'" >&2; return 2 ;;
  esac
}

# engine_blas: the BLAS our engine loads here (the OpenMP build when installed, unless MLNETEXT_BLAS=system).
engine_blas() {
  if [[ "${MLNETEXT_BLAS:-openmp}" != system && -f "$OPENMP_BLAS/libblas.so.3" ]]; then echo openmp; else echo system; fi
}
