//! The OpenBLAS thread pool. Serving runs many small products at once, one per request on its own blocking
//! thread; OpenBLAS threads inside each of them only fight over the same cores (measured here with four concurrent
//! batch-64 callers on 2 cores: 789 calls/s with one thread each, 504 with two). Training, one big product at a
//! time, keeps the default.

use std::os::raw::c_int;

unsafe extern "C" {
    fn openblas_set_num_threads(threads: c_int);
}

/// One OpenBLAS thread per call, unless the operator set `OPENBLAS_NUM_THREADS`.
pub fn single_threaded_unless_configured() {
    if std::env::var_os("OPENBLAS_NUM_THREADS").is_none() {
        // SAFETY: a plain setter of OpenBLAS's global thread count, called before serving starts.
        unsafe { openblas_set_num_threads(1) };
    }
}
