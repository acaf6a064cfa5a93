//! The one place where matrix products are computed.

/// `C[m,n] = A[m,k] · B[k,n] + beta · C`, single-threaded (callers parallelise over images).
/// Each matrix is given with its row and column strides, so a transposed operand costs nothing:
/// pass `(rs, cs) = (1, rows)` to read a row-major matrix as its transpose.
#[allow(clippy::too_many_arguments)]
pub fn sgemm(
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    (a_rs, a_cs): (usize, usize),
    b: &[f32],
    (b_rs, b_cs): (usize, usize),
    beta: f32,
    c: &mut [f32],
    (c_rs, c_cs): (usize, usize),
) {
    if m == 0 || n == 0 {
        return;
    }
    let last = |rows: usize, cols: usize, rs: usize, cs: usize| (rows - 1) * rs + (cols - 1) * cs;
    assert!(k == 0 || a.len() > last(m, k, a_rs, a_cs), "sgemm: A too short");
    assert!(k == 0 || b.len() > last(k, n, b_rs, b_cs), "sgemm: B too short");
    assert!(c.len() > last(m, n, c_rs, c_cs), "sgemm: C too short");
    // SAFETY: the asserts above keep every index that matrixmultiply derives from the shapes and
    // strides inside the three slices; `c` is borrowed mutably so it cannot alias `a` or `b`.
    unsafe {
        matrixmultiply::sgemm(
            m, k, n, 1.0,
            a.as_ptr(), a_rs as isize, a_cs as isize,
            b.as_ptr(), b_rs as isize, b_cs as isize,
            beta,
            c.as_mut_ptr(), c_rs as isize, c_cs as isize,
        );
    }
}

/// Row-major strides of an `rows x cols` matrix.
pub const fn row_major(cols: usize) -> (usize, usize) {
    (cols, 1)
}

/// Strides that read a row-major `rows x cols` matrix as its `cols x rows` transpose.
pub const fn transposed(cols: usize) -> (usize, usize) {
    (1, cols)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multiplies_with_transposed_operand() {
        // A = [[1,2],[3,4]], B stored as B^T = [[5,6],[7,8]] -> B = [[5,7],[6,8]]
        let a = [1.0, 2.0, 3.0, 4.0];
        let bt = [5.0, 6.0, 7.0, 8.0];
        let mut c = [0.0; 4];
        sgemm(2, 2, 2, &a, row_major(2), &bt, transposed(2), 0.0, &mut c, row_major(2));
        assert_eq!(c, [17.0, 23.0, 39.0, 53.0]);
    }
}
