"""Vector loops of the compiled kernels, written in LLVM IR (numba intrinsics), for the
loops numba left scalar. Numba leaves LLVM's SLP vectorizer off, and the loop
vectorizer may not reassociate float adds, so a kernel that keeps several accumulators
(to fix the order of its sums, which catalogs store) or re-reads its accumulators from
memory at every step ran one instruction per element. Here the accumulators are vectors
held in registers for a whole loop; each lane does exactly the scalar code's operations
on the same elements in the same order (no reassociation, no fused multiply-add: the
IR carries no fast-math flags), so every sum is bit for bit the scalar loop's.

- `lane_sums`, `lane_central_sums`: the moments' four accumulators per sum (element
  s0 + 4j + l into accumulator l, in order of j) as the lanes of one <4 x double>, over
  `groups` groups of 4 from flat position s0 of a contiguous 1-D array (float32,
  float64 or integers, widened to float64 as `float(x[i])` does); the caller adds the
  tail of fewer than 4 elements.
- `tile_rows_product`: two rows of a 64-column product (the rank sketch's Gaussian
  side), each a <64 x double> summed over the whole inner dimension.
- `fold_row_runs`: the column fold of one matrix row, its 64 buckets a <64 x double>.

numba's cache (kernels.py's `cache=True`) is keyed on kernels.py alone: after editing
this file, touch kernels.py (or delete lineage/fingerprint/__pycache__/kernels.*) so the
kernels are compiled again.
"""

from __future__ import annotations

from llvmlite import ir
from numba.core import types
from numba.extending import intrinsic

LANES = 4
_F64 = ir.DoubleType()
_VEC = ir.VectorType(_F64, LANES)
_RESULT = types.UniTuple(types.float64, 3 * LANES)


def _supported(x) -> bool:
    return (isinstance(x, types.Array) and x.ndim == 1 and x.layout == "C"
            and (x.dtype in (types.float32, types.float64) or isinstance(x.dtype, types.Integer)))


def _widen(builder: ir.IRBuilder, vec: ir.Value, dtype) -> ir.Value:
    """<4 x T> -> <4 x double>, exact (what float(x[i]) does per element)."""
    if dtype == types.float64:
        return vec
    if dtype == types.float32:
        return builder.fpext(vec, _VEC)
    return (builder.sitofp if dtype.signed else builder.uitofp)(vec, _VEC)


def _group_loader(context, builder, xtype, x, s0):
    """A function of j: the 4 elements from s0 + 4j, widened, as one vector."""
    data = context.make_array(xtype)(context, builder, x).data
    element = context.get_data_type(xtype.dtype)
    vector_ptr = ir.VectorType(element, LANES).as_pointer()
    align = context.get_abi_sizeof(element)

    def load(j: ir.Value) -> ir.Value:
        index = builder.add(s0, builder.mul(j, ir.Constant(j.type, LANES)))
        ptr = builder.bitcast(builder.gep(data, [index]), vector_ptr)
        return _widen(builder, builder.load(ptr, align=align), xtype.dtype)

    return load


def _lanes(builder: ir.IRBuilder, vectors: list[ir.Value]) -> list[ir.Value]:
    return [builder.extract_element(v, ir.Constant(ir.IntType(32), lane))
            for v in vectors for lane in range(LANES)]


def _loop(builder: ir.IRBuilder, count: ir.Value, starts: list[ir.Value], body,
          kind: ir.Type = _VEC, name: str = "lanes"):
    """for j in range(count): accumulators = body(j, accumulators); returns them. The
    accumulators (of type `kind`: lane vectors or row tiles) are phis: they stay in
    vector registers. `name` labels the loop's basic blocks."""
    entry = builder.basic_block
    head = builder.append_basic_block(f"{name}.head")
    step = builder.append_basic_block(f"{name}.body")
    done = builder.append_basic_block(f"{name}.done")
    builder.branch(head)
    builder.position_at_end(head)
    j = builder.phi(count.type)
    accs = [builder.phi(kind) for _ in starts]
    j.add_incoming(ir.Constant(count.type, 0), entry)
    for acc, start in zip(accs, starts, strict=True):
        acc.add_incoming(start, entry)
    builder.cbranch(builder.icmp_signed("<", j, count), step, done)
    builder.position_at_end(step)
    updated = body(j, accs)
    j.add_incoming(builder.add(j, ir.Constant(count.type, 1)), builder.basic_block)
    for acc, new in zip(accs, updated, strict=True):
        acc.add_incoming(new, builder.basic_block)
    builder.branch(head)
    builder.position_at_end(done)
    return accs


@intrinsic
def lane_sums(typingctx, x, s0, groups):
    """(4 lane sums, 4 lane minima, 4 lane maxima) of the groups. A lane's minimum is
    `v if v < lo else lo` per element: the value of min() for data without NaN (the
    caller handles NaN, and the sign of a zero minimum, as before)."""
    if not _supported(x):
        return None

    def codegen(context, builder, signature, args):
        array, start, count = args
        load = _group_loader(context, builder, signature.args[0], array, start)

        def body(j, accs):
            total, low, high = accs
            v = load(j)
            low = builder.select(builder.fcmp_ordered("<", v, low), v, low)
            high = builder.select(builder.fcmp_ordered(">", v, high), v, high)
            return [builder.fadd(total, v), low, high]

        inf = float("inf")
        accs = _loop(builder, count, [ir.Constant(_VEC, [0.0] * LANES),
                                      ir.Constant(_VEC, [inf] * LANES),
                                      ir.Constant(_VEC, [-inf] * LANES)], body)
        return context.make_tuple(builder, signature.return_type, _lanes(builder, accs))

    return _RESULT(x, types.intp, types.intp), codegen


@intrinsic
def lane_central_sums(typingctx, x, s0, groups, mean):
    """(4 lane sums of d^2, 4 of d^3, 4 of d^4) of the groups, d = x - mean, as the
    scalar loop computes them: e = d * d; q2 += e; q3 += e * d; q4 += e * e."""
    if not _supported(x):
        return None

    def codegen(context, builder, signature, args):
        array, start, count, center = args
        load = _group_loader(context, builder, signature.args[0], array, start)
        means = builder.insert_element(ir.Constant(_VEC, ir.Undefined), center,
                                       ir.Constant(ir.IntType(32), 0))
        means = builder.shuffle_vector(means, ir.Constant(_VEC, ir.Undefined),
                                       ir.Constant(ir.VectorType(ir.IntType(32), LANES),
                                                   [0] * LANES))

        def body(j, accs):
            q2, q3, q4 = accs
            d = builder.fsub(load(j), means)
            e = builder.fmul(d, d)
            return [builder.fadd(q2, e), builder.fadd(q3, builder.fmul(e, d)),
                    builder.fadd(q4, builder.fmul(e, e))]

        zero = ir.Constant(_VEC, [0.0] * LANES)
        accs = _loop(builder, count, [zero, zero, zero], body)
        return context.make_tuple(builder, signature.return_type, _lanes(builder, accs))

    return _RESULT(x, types.intp, types.intp, types.float64), codegen


TILE_WIDTH = 64  # the rank sketch's k: a row of the product is one <64 x double>
_ROW = ir.VectorType(_F64, TILE_WIDTH)
_MATRIX = types.Array(types.float64, 2, "C")


@intrinsic
def tile_rows_product(typingctx, coef, rows, out, base, step_index, step_row, count,
                      first):
    """out[first + t, :] = sum over i < count of coef[base + i * step_index + t * step_row]
    * rows[i, :], for t = 0, 1: two rows of a product with 64 columns, each accumulated
    in i order from 0.0 as the scalar loop does (a product rounded, then added), held in
    vector registers for the whole loop instead of read and written per i."""
    if not (coef == _MATRIX and rows == _MATRIX and out == _MATRIX):
        return None

    def codegen(context, builder, signature, args):
        coef_a, rows_a, out_a, start, by_index, by_row, n, top = args
        coefs = context.make_array(_MATRIX)(context, builder, coef_a).data
        row_data = context.make_array(_MATRIX)(context, builder, rows_a).data
        out_data = context.make_array(_MATRIX)(context, builder, out_a).data
        width = ir.Constant(n.type, TILE_WIDTH)

        def splat(value):
            vec = builder.insert_element(ir.Constant(_ROW, ir.Undefined), value,
                                         ir.Constant(ir.IntType(32), 0))
            return builder.shuffle_vector(vec, ir.Constant(_ROW, ir.Undefined),
                                          ir.Constant(ir.VectorType(ir.IntType(32),
                                                                    TILE_WIDTH),
                                                      [0] * TILE_WIDTH))

        def body(i, accs):
            ptr = builder.bitcast(builder.gep(row_data, [builder.mul(i, width)]),
                                  _ROW.as_pointer())
            row = builder.load(ptr, align=8)
            at = builder.add(start, builder.mul(i, by_index))
            updated = []
            for t, acc in enumerate(accs):
                where = builder.add(at, builder.mul(ir.Constant(n.type, t), by_row))
                c = builder.load(builder.gep(coefs, [where]))
                updated.append(builder.fadd(acc, builder.fmul(splat(c), row)))
            return updated

        zero = ir.Constant(_ROW, [0.0] * TILE_WIDTH)
        accs = _loop(builder, n, [zero, zero], body, _ROW, "rows")
        for t, acc in enumerate(accs):
            offset = builder.mul(builder.add(top, ir.Constant(n.type, t)), width)
            ptr = builder.bitcast(builder.gep(out_data, [offset]), _ROW.as_pointer())
            builder.store(acc, ptr, align=8)
        return context.get_dummy_value()

    sig = types.void(coef, rows, out, types.intp, types.intp, types.intp, types.intp,
                     types.intp)
    return sig, codegen


@intrinsic
def fold_row_runs(typingctx, x, at, signs, sign_at, folded, row, runs):
    """folded[row, :] += x[at + 64 j + q] * signs[sign_at + 64 j + q] for j < runs,
    q < 64, j in order: the column fold of one matrix row's whole 64-wide runs, the row's 64
    accumulators held in vector registers (read and written once, not once per run)."""
    if not (isinstance(x, types.Array) and x.ndim == 1 and x.layout == "C"
            and x.dtype in (types.float32, types.float64)
            and signs == types.Array(types.float32, 1, "C") and folded == _MATRIX):
        return None

    def codegen(context, builder, signature, args):
        x_a, start, signs_a, sign_start, folded_a, r, n = args
        xtype = signature.args[0]
        data = context.make_array(xtype)(context, builder, x_a).data
        sign_data = context.make_array(signature.args[2])(context, builder, signs_a).data
        acc_data = context.make_array(_MATRIX)(context, builder, folded_a).data
        width = ir.Constant(n.type, TILE_WIDTH)
        x_vec = ir.VectorType(context.get_data_type(xtype.dtype), TILE_WIDTH).as_pointer()
        s_vec = ir.VectorType(ir.FloatType(), TILE_WIDTH).as_pointer()
        acc_ptr = builder.bitcast(builder.gep(acc_data, [builder.mul(r, width)]),
                                  _ROW.as_pointer())

        def body(j, accs):
            offset = builder.mul(j, width)
            xs = builder.load(builder.bitcast(
                builder.gep(data, [builder.add(start, offset)]), x_vec), align=4)
            if xtype.dtype == types.float32:
                xs = builder.fpext(xs, _ROW)
            ss = builder.fpext(builder.load(builder.bitcast(
                builder.gep(sign_data, [builder.add(sign_start, offset)]), s_vec), align=4),
                _ROW)
            return [builder.fadd(accs[0], builder.fmul(xs, ss))]

        accs = _loop(builder, n, [builder.load(acc_ptr, align=8)], body, _ROW, "rows")
        builder.store(accs[0], acc_ptr, align=8)
        return context.get_dummy_value()

    sig = types.void(x, types.intp, signs, types.intp, folded, types.intp, types.intp)
    return sig, codegen
