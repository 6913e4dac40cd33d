// The Interaction Network's edge step (LayerNorm + ReLU of a sum of per-edge parts and gathered per-node rows),
// forward and backward, as two CPU kernels that make one pass over each row.
//
// XLA:CPU compiles the same maths (trkx_tf/models/kernels.py) into one loop per reduction: the row mean, the
// row variance and the output each re-read (and re-gather, re-convert) the inputs, and its bfloat16 conversions
// are slow; these kernels keep a row (H floats) in cache while they work on it. Python wrapper, maths and
// tests: trkx_tf/models/native.py, trkx_tf/models/kernels.py, tests/models/test_native.py.
//
// Types: T (the per-edge tensors) is float or bfloat16; statistics, the bias and the LayerNorm parameters are
// float32. Rows are split into a fixed number of blocks, so column sums (the parameters' gradients) are summed
// in the same order whatever the thread count.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/util/work_sharder.h"

namespace trkx {
namespace {

using tensorflow::DataType;
using tensorflow::OpInputList;
using tensorflow::OpKernel;
using tensorflow::OpKernelConstruction;
using tensorflow::OpKernelContext;
using tensorflow::Tensor;
using tensorflow::TensorShape;
using tensorflow::errors::InvalidArgument;
using tensorflow::shape_inference::InferenceContext;
using tensorflow::shape_inference::ShapeHandle;

// ------------------------------------------------------------------------------------------------ element I/O
// Written so that GCC vectorises the row loops below (bit casts and selects, no branches).
inline float bits_to_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline uint32_t float_to_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
inline uint16_t to_bf16(float v) {  // round to nearest even; NaN stays NaN
  const uint32_t u = float_to_bits(v);
  const uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
  return static_cast<uint16_t>((u & 0x7fffffffu) > 0x7f800000u ? (u >> 16) | 0x40u : rounded);
}
inline float load(const float* p, int64_t i) { return p[i]; }
inline float load(const Eigen::bfloat16* p, int64_t i) {
  return bits_to_float(static_cast<uint32_t>(reinterpret_cast<const uint16_t*>(p)[i]) << 16);
}
inline void store(float* p, int64_t i, float v) { p[i] = v; }
inline void store(Eigen::bfloat16* p, int64_t i, float v) { reinterpret_cast<uint16_t*>(p)[i] = to_bf16(v); }

template <typename T>
inline void add_row(float* __restrict x, const T* __restrict p, int64_t h) {
#pragma omp simd
  for (int64_t j = 0; j < h; ++j) x[j] += load(p, j);
}

constexpr int64_t kBlocks = 256;  // fixed row blocks (see the header)

// Runs fn(block, first_row, end_row) over kBlocks blocks of [0, rows) on the op's CPU threads.
template <typename Fn>
void for_blocks(OpKernelContext* ctx, int64_t rows, int64_t cost_per_row, Fn fn) {
  const int64_t blocks = std::max<int64_t>(1, std::min(rows, kBlocks));
  const int64_t per = (rows + blocks - 1) / blocks;
  auto* pool = ctx->device()->tensorflow_cpu_worker_threads()->workers;
  pool->ParallelFor(blocks, per * cost_per_row, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t r0 = b * per, r1 = std::min(rows, r0 + per);
      if (r0 < r1) fn(b, r0, r1);
    }
  });
}

template <typename T>
const T* data(const Tensor& t) { return reinterpret_cast<const T*>(t.tensor_data().data()); }
template <typename T>
T* mutable_data(Tensor* t) { return reinterpret_cast<T*>(const_cast<char*>(t->tensor_data().data())); }

tensorflow::Status check_rows(const Tensor& t, int64_t rows, int64_t h, const char* what) {
  if (t.dims() != 2 || t.dim_size(0) != rows || t.dim_size(1) != h)
    return InvalidArgument(what, " must be [", rows, ", ", h, "], got ", t.shape().DebugString());
  return tensorflow::OkStatus();
}

tensorflow::Status check_ids(const Tensor& ids, int64_t rows, int64_t limit, const char* what) {
  if (ids.dims() != 1 || ids.dim_size(0) != rows)
    return InvalidArgument(what, " must be [", rows, "], got ", ids.shape().DebugString());
  const int32_t* p = data<int32_t>(ids);
  for (int64_t i = 0; i < rows; ++i)
    if (p[i] < 0 || p[i] >= limit) return InvalidArgument(what, "[", i, "] = ", p[i], " is not in [0, ", limit, ")");
  return tensorflow::OkStatus();
}

// ------------------------------------------------------------------------------------------------ forward
// x = bias + sum(parts) + sum_k tables[k][rows[k]];  xhat = (x - mean) * inv;  h = ReLU(xhat * scale + offset)
// outputs: h, acc_next (= acc + h, or h), xhat (T), inv ([E, 1] float)
template <typename T>
class EdgeLnForward : public OpKernel {
 public:
  explicit EdgeLnForward(OpKernelConstruction* c) : OpKernel(c) { OP_REQUIRES_OK(c, c->GetAttr("eps", &eps_)); }

  void Compute(OpKernelContext* ctx) override {
    OpInputList parts, tables, rows, acc;
    OP_REQUIRES_OK(ctx, ctx->input_list("parts", &parts));
    OP_REQUIRES_OK(ctx, ctx->input_list("tables", &tables));
    OP_REQUIRES_OK(ctx, ctx->input_list("rows", &rows));
    OP_REQUIRES_OK(ctx, ctx->input_list("acc", &acc));
    const Tensor &bias = ctx->input(ctx->num_inputs() - 3), &scale = ctx->input(ctx->num_inputs() - 2),
                 &offset = ctx->input(ctx->num_inputs() - 1);
    const int64_t e = parts[0].dim_size(0), h = parts[0].dim_size(1);
    for (int i = 0; i < parts.size(); ++i) OP_REQUIRES_OK(ctx, check_rows(parts[i], e, h, "parts"));
    for (int i = 0; i < acc.size(); ++i) OP_REQUIRES_OK(ctx, check_rows(acc[i], e, h, "acc"));
    for (int i = 0; i < tables.size(); ++i) {
      OP_REQUIRES(ctx, tables[i].dims() == 2 && tables[i].dim_size(1) == h,
                  InvalidArgument("tables must be [R, ", h, "], got ", tables[i].shape().DebugString()));
      OP_REQUIRES_OK(ctx, check_ids(rows[i], e, tables[i].dim_size(0), "rows"));
    }
    for (const Tensor* p : {&bias, &scale, &offset})
      OP_REQUIRES(ctx, p->dims() == 1 && p->dim_size(0) == h, InvalidArgument("bias, scale and offset must be [", h, "]"));

    Tensor *out_h, *out_acc, *out_xhat, *out_inv;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({e, h}), &out_h));
    if (acc.size() > 0) {
      OP_REQUIRES_OK(ctx, ctx->allocate_output(1, TensorShape({e, h}), &out_acc));
    } else {
      ctx->set_output(1, *out_h);  // acc_next is h itself
      out_acc = nullptr;
    }
    OP_REQUIRES_OK(ctx, ctx->allocate_output(2, TensorShape({e, h}), &out_xhat));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(3, TensorShape({e, 1}), &out_inv));

    std::vector<const T*> p_ptr, t_ptr;
    std::vector<const int32_t*> r_ptr;
    for (int i = 0; i < parts.size(); ++i) p_ptr.push_back(data<T>(parts[i]));
    for (int i = 0; i < tables.size(); ++i) {
      t_ptr.push_back(data<T>(tables[i]));
      r_ptr.push_back(data<int32_t>(rows[i]));
    }
    const T* acc_ptr = acc.size() > 0 ? data<T>(acc[0]) : nullptr;
    const float *__restrict b = data<float>(bias), *__restrict g = data<float>(scale), *__restrict o = data<float>(offset);
    T *yh = mutable_data<T>(out_h), *ya = out_acc ? mutable_data<T>(out_acc) : nullptr,
      *yx = mutable_data<T>(out_xhat);
    float* yi = mutable_data<float>(out_inv);
    const float eps = eps_;
    const int64_t np = p_ptr.size(), nt = t_ptr.size();

    for_blocks(ctx, e, h * (np + nt + 6), [&](int64_t, int64_t r0, int64_t r1) {
      std::vector<float> xbuf(h);
      float* __restrict x = xbuf.data();
      for (int64_t r = r0; r < r1; ++r) {
        const int64_t base = r * h;
        for (int64_t j = 0; j < h; ++j) x[j] = b[j];
        for (int64_t k = 0; k < np; ++k) add_row(x, p_ptr[k] + base, h);
        for (int64_t k = 0; k < nt; ++k) add_row(x, t_ptr[k] + static_cast<int64_t>(r_ptr[k][r]) * h, h);
        float sum = 0.f;
#pragma omp simd reduction(+ : sum)
        for (int64_t j = 0; j < h; ++j) sum += x[j];
        const float mean = sum / h;
        float sq = 0.f;
#pragma omp simd reduction(+ : sq)
        for (int64_t j = 0; j < h; ++j) sq += (x[j] - mean) * (x[j] - mean);
        const float inv = 1.f / std::sqrt(sq / h + eps);
        yi[r] = inv;
        T *__restrict oh = yh + base, *__restrict ox = yx + base;
#pragma omp simd
        for (int64_t j = 0; j < h; ++j) {
          const float xh = (x[j] - mean) * inv;
          store(ox, j, xh);
          store(oh, j, std::max(xh * g[j] + o[j], 0.f));
        }
        if (ya) {
          T* __restrict oa = ya + base;
          const T* __restrict ia = acc_ptr + base;
#pragma omp simd
          for (int64_t j = 0; j < h; ++j) store(oa, j, load(ia, j) + load(oh, j));
        }
      }
    });
  }

 private:
  float eps_;
};

// ------------------------------------------------------------------------------------------------ backward
// dy = sum(dense) + sum_k gsrc[k][gids[k]];  dpre = dy where xhat * scale + offset > 0;  dxhat = dpre * scale
// dx = inv * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat));  dz = dx (+ dz_next)
// outputs: dx as float ([E, H], or [0, H] unless want_dx32), dx as T ([E, H], or [0, H] unless want_dxt), dz (T),
// and the column sums dscale = sum(dpre * xhat), doffset = sum(dpre), dbias = sum(dx) (float [H])
template <typename T>
class EdgeLnBackward : public OpKernel {
 public:
  explicit EdgeLnBackward(OpKernelConstruction* c) : OpKernel(c) {
    OP_REQUIRES_OK(c, c->GetAttr("want_dx32", &want_dx32_));
    OP_REQUIRES_OK(c, c->GetAttr("want_dxt", &want_dxt_));
  }

  void Compute(OpKernelContext* ctx) override {
    OpInputList dense, gsrc, gids, dz_next;
    OP_REQUIRES_OK(ctx, ctx->input_list("dense", &dense));
    OP_REQUIRES_OK(ctx, ctx->input_list("gsrc", &gsrc));
    OP_REQUIRES_OK(ctx, ctx->input_list("gids", &gids));
    OP_REQUIRES_OK(ctx, ctx->input_list("dz_next", &dz_next));
    const int n = ctx->num_inputs();
    const Tensor &xhat = ctx->input(n - 4), &inv = ctx->input(n - 3), &scale = ctx->input(n - 2),
                 &offset = ctx->input(n - 1);
    OP_REQUIRES(ctx, xhat.dims() == 2, InvalidArgument("xhat must be [E, H]"));
    const int64_t e = xhat.dim_size(0), h = xhat.dim_size(1);
    for (int i = 0; i < dense.size(); ++i) OP_REQUIRES_OK(ctx, check_rows(dense[i], e, h, "dense"));
    for (int i = 0; i < dz_next.size(); ++i) OP_REQUIRES_OK(ctx, check_rows(dz_next[i], e, h, "dz_next"));
    OP_REQUIRES_OK(ctx, check_rows(inv, e, 1, "inv"));
    for (int i = 0; i < gsrc.size(); ++i) {
      OP_REQUIRES(ctx, gsrc[i].dims() == 2 && gsrc[i].dim_size(1) == h,
                  InvalidArgument("gsrc must be [S, ", h, "], got ", gsrc[i].shape().DebugString()));
      OP_REQUIRES_OK(ctx, check_ids(gids[i], e, gsrc[i].dim_size(0), "gids"));
    }
    for (const Tensor* p : {&scale, &offset})
      OP_REQUIRES(ctx, p->dims() == 1 && p->dim_size(0) == h, InvalidArgument("scale and offset must be [", h, "]"));

    Tensor *o_dx32, *o_dxt, *o_dz, *o_dscale, *o_doffset, *o_dbias;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({want_dx32_ ? e : 0, h}), &o_dx32));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, TensorShape({want_dxt_ ? e : 0, h}), &o_dxt));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(2, TensorShape({e, h}), &o_dz));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(3, TensorShape({h}), &o_dscale));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(4, TensorShape({h}), &o_doffset));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(5, TensorShape({h}), &o_dbias));

    std::vector<const T*> d_ptr, s_ptr;
    std::vector<const int32_t*> i_ptr;
    for (int i = 0; i < dense.size(); ++i) d_ptr.push_back(data<T>(dense[i]));
    for (int i = 0; i < gsrc.size(); ++i) {
      s_ptr.push_back(data<T>(gsrc[i]));
      i_ptr.push_back(data<int32_t>(gids[i]));
    }
    const T* dzn = dz_next.size() > 0 ? data<T>(dz_next[0]) : nullptr;
    const T* xh_ptr = data<T>(xhat);
    const float *__restrict iv = data<float>(inv), *__restrict g = data<float>(scale), *__restrict o = data<float>(offset);
    float* dx32 = want_dx32_ ? mutable_data<float>(o_dx32) : nullptr;
    T* dxt = want_dxt_ ? mutable_data<T>(o_dxt) : nullptr;
    T* dz = mutable_data<T>(o_dz);
    const int64_t nd = d_ptr.size(), ns = s_ptr.size();
    const int64_t blocks = std::max<int64_t>(1, std::min(e, kBlocks));
    std::vector<float> partial(blocks * 3 * h, 0.f);  // per block: dscale, doffset, dbias

    for_blocks(ctx, e, h * (nd + ns + 10), [&](int64_t blk, int64_t r0, int64_t r1) {
      std::vector<float> buf(3 * h);
      float *__restrict dy = buf.data(), *__restrict xh = dy + h, *__restrict dxhat = xh + h;
      float *__restrict cs = partial.data() + blk * 3 * h, *__restrict co = cs + h, *__restrict cb = co + h;
      for (int64_t r = r0; r < r1; ++r) {
        const int64_t base = r * h;
        for (int64_t j = 0; j < h; ++j) dy[j] = 0.f;
        for (int64_t k = 0; k < nd; ++k) add_row(dy, d_ptr[k] + base, h);
        for (int64_t k = 0; k < ns; ++k) add_row(dy, s_ptr[k] + static_cast<int64_t>(i_ptr[k][r]) * h, h);
        float m1 = 0.f, m2 = 0.f;
        const T* __restrict ixh = xh_ptr + base;
#pragma omp simd reduction(+ : m1, m2)
        for (int64_t j = 0; j < h; ++j) {
          xh[j] = load(ixh, j);
          const float dpre = xh[j] * g[j] + o[j] > 0.f ? dy[j] : 0.f;
          cs[j] += dpre * xh[j];
          co[j] += dpre;
          dxhat[j] = dpre * g[j];
          m1 += dxhat[j];
          m2 += dxhat[j] * xh[j];
        }
        m1 /= h;
        m2 /= h;
        const float inv_r = iv[r];
#pragma omp simd
        for (int64_t j = 0; j < h; ++j) {
          dy[j] = inv_r * (dxhat[j] - m1 - xh[j] * m2);  // dy now holds dx
          cb[j] += dy[j];
        }
        if (dx32) std::memcpy(dx32 + base, dy, h * sizeof(float));
        if (dxt) {
          T* __restrict o1 = dxt + base;
#pragma omp simd
          for (int64_t j = 0; j < h; ++j) store(o1, j, dy[j]);
        }
        T* __restrict o2 = dz + base;
        if (dzn) {
          const T* __restrict i2 = dzn + base;
#pragma omp simd
          for (int64_t j = 0; j < h; ++j) store(o2, j, dy[j] + load(i2, j));
        } else {
#pragma omp simd
          for (int64_t j = 0; j < h; ++j) store(o2, j, dy[j]);
        }
      }
    });
    float *ds = mutable_data<float>(o_dscale), *dof = mutable_data<float>(o_doffset),
          *db = mutable_data<float>(o_dbias);
    for (int64_t j = 0; j < h; ++j) ds[j] = dof[j] = db[j] = 0.f;
    for (int64_t blk = 0; blk < blocks; ++blk) {
      const float* cs = partial.data() + blk * 3 * h;
      for (int64_t j = 0; j < h; ++j) {
        ds[j] += cs[j];
        dof[j] += cs[h + j];
        db[j] += cs[2 * h + j];
      }
    }
  }

 private:
  bool want_dx32_, want_dxt_;
};

// ------------------------------------------------------------------------------------------------ registration
REGISTER_OP("TrkxEdgeLnForward")
    .Attr("T: {float, bfloat16}")
    .Attr("n_parts: int >= 1")
    .Attr("n_tables: int >= 0")
    .Attr("n_acc: int >= 0")
    .Attr("eps: float")
    .Input("parts: n_parts * T")
    .Input("tables: n_tables * T")
    .Input("rows: n_tables * int32")
    .Input("acc: n_acc * T")
    .Input("bias: float")
    .Input("scale: float")
    .Input("offset: float")
    .Output("h: T")
    .Output("acc_next: T")
    .Output("xhat: T")
    .Output("inv: float")
    .SetShapeFn([](InferenceContext* c) {
      ShapeHandle s;
      TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 2, &s));
      for (int i = 0; i < 3; ++i) c->set_output(i, s);
      c->set_output(3, c->Matrix(c->Dim(s, 0), 1));
      return tensorflow::OkStatus();
    });

REGISTER_OP("TrkxEdgeLnBackward")
    .Attr("T: {float, bfloat16}")
    .Attr("n_dense: int >= 0")
    .Attr("n_gather: int >= 0")
    .Attr("n_dz: int >= 0")
    .Attr("want_dx32: bool")
    .Attr("want_dxt: bool")
    .Input("dense: n_dense * T")
    .Input("gsrc: n_gather * T")
    .Input("gids: n_gather * int32")
    .Input("dz_next: n_dz * T")
    .Input("xhat: T")
    .Input("inv: float")
    .Input("scale: float")
    .Input("offset: float")
    .Output("dx32: float")
    .Output("dxt: T")
    .Output("dz: T")
    .Output("dscale: float")
    .Output("doffset: float")
    .Output("dbias: float")
    .SetShapeFn([](InferenceContext* c) {
      ShapeHandle xhat;
      TF_RETURN_IF_ERROR(c->WithRank(c->input(c->num_inputs() - 4), 2, &xhat));
      bool want_dx32, want_dxt;
      TF_RETURN_IF_ERROR(c->GetAttr("want_dx32", &want_dx32));
      TF_RETURN_IF_ERROR(c->GetAttr("want_dxt", &want_dxt));
      auto rows_or_none = [&](bool want) { return want ? xhat : c->Matrix(0, c->Dim(xhat, 1)); };
      c->set_output(0, rows_or_none(want_dx32));
      c->set_output(1, rows_or_none(want_dxt));
      c->set_output(2, xhat);
      for (int i = 3; i < 6; ++i) c->set_output(i, c->Vector(c->Dim(xhat, 1)));
      return tensorflow::OkStatus();
    });

#define REGISTER(T)                                                                                      \
  REGISTER_KERNEL_BUILDER(Name("TrkxEdgeLnForward").Device(tensorflow::DEVICE_CPU).TypeConstraint<T>("T"), \
                          EdgeLnForward<T>);                                                             \
  REGISTER_KERNEL_BUILDER(Name("TrkxEdgeLnBackward").Device(tensorflow::DEVICE_CPU).TypeConstraint<T>("T"), \
                          EdgeLnBackward<T>);
REGISTER(float)
REGISTER(Eigen::bfloat16)
#undef REGISTER

}  // namespace
}  // namespace trkx
