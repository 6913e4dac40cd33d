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
// the value a float takes once stored as T
inline float rounded(float v, const float*) { return v; }
inline float rounded(float v, const Eigen::bfloat16*) { return bits_to_float(static_cast<uint32_t>(to_bf16(v)) << 16); }

template <typename T>
inline void add_row(float* __restrict x, const T* __restrict p, int64_t h) {
#pragma omp simd
  for (int64_t j = 0; j < h; ++j) x[j] += load(p, j);
}

constexpr int64_t kBlocks = 256;  // fixed row blocks (see the header)

constexpr int64_t kPrefetch = 6;  // rows ahead whose gathered (random) rows are prefetched

// Prefetches the rows ids[r] of each table (rows of h elements of T): gathers are random reads.
template <typename T>
inline void prefetch_rows(const std::vector<const T*>& tables, const std::vector<const int32_t*>& ids, int64_t r,
                          int64_t h) {
  for (size_t k = 0; k < tables.size(); ++k) {
    const char* p = reinterpret_cast<const char*>(tables[k] + static_cast<int64_t>(ids[k][r]) * h);
    for (int64_t c = 0; c < h * static_cast<int64_t>(sizeof(T)); c += 64) __builtin_prefetch(p + c);
  }
}

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

// The optional sorted ids of an in-kernel segment sum: at most one [rows] list, non-decreasing, in
// [0, num_segments); *segments is the output's row count (0 without ids).
tensorflow::Status check_sum_ids(const OpInputList& sum_ids, const Tensor& num_segments, int64_t rows,
                                 int64_t* segments) {
  if (!tensorflow::TensorShapeUtils::IsScalar(num_segments.shape()))
    return InvalidArgument("num_segments must be a scalar, got ", num_segments.shape().DebugString());
  if (sum_ids.size() > 1) return InvalidArgument("at most one sum_ids");
  *segments = sum_ids.size() ? num_segments.scalar<int32_t>()() : 0;
  if (sum_ids.size() == 0) return tensorflow::OkStatus();
  TF_RETURN_IF_ERROR(check_ids(sum_ids[0], rows, *segments, "sum_ids"));
  const int32_t* p = data<int32_t>(sum_ids[0]);
  for (int64_t i = 1; i < rows; ++i)
    if (p[i] < p[i - 1]) return InvalidArgument("sum_ids must be sorted: sum_ids[", i, "] = ", p[i], " < ", p[i - 1]);
  return tensorflow::OkStatus();
}

// Sums float rows into out[ids[r]] (out: [S, h] of O, zeroed first) for sorted ids, one block of rows per task.
// A run of equal ids inside a block is summed in float and written once; the first and last runs of a block
// (which may continue in the neighbouring blocks) are kept as partials and merged in block order by finish(),
// so the result does not depend on the threads.
template <typename O>
class SortedRowSum {
 public:
  SortedRowSum(Tensor* out, const Tensor* ids, int64_t h)
      : out_(out ? mutable_data<O>(out) : nullptr), ids_(ids ? data<int32_t>(*ids) : nullptr), h_(h),
        rows_(out ? out->dim_size(0) : 0) {
    if (!out_) return;
    std::fill(out_, out_ + rows_ * h_, O(0.f));
    part_.assign(2 * kBlocks * h_, 0.f);
    part_id_.assign(2 * kBlocks, -1);
  }
  bool active() const { return out_ != nullptr; }

  // The running state of one block.
  struct Run {
    int32_t id = -1;
    bool first = true;
    std::vector<float> acc;
  };
  Run start() const { return Run{-1, true, std::vector<float>(h_, 0.f)}; }

  void add(Run& run, int64_t blk, int64_t r, const float* __restrict v) {
    const int32_t id = ids_[r];
    if (id != run.id) {
      if (run.id >= 0) flush(run, blk, false);
      run.id = id;
    }
    float* __restrict a = run.acc.data();
#pragma omp simd
    for (int64_t j = 0; j < h_; ++j) a[j] += v[j];
  }
  void end(Run& run, int64_t blk) {
    if (run.id >= 0) flush(run, blk, true);
  }

  void finish() {  // merges the partials (block order, so ids ascend) and writes them
    if (!out_) return;
    std::vector<float> sum(h_, 0.f);
    int32_t cur = -1;
    for (int64_t k = 0; k < 2 * kBlocks; ++k) {
      const int32_t id = part_id_[k];
      if (id < 0) continue;
      if (id != cur && cur >= 0) write(cur, sum.data());
      if (id != cur) std::fill(sum.begin(), sum.end(), 0.f);
      cur = id;
      for (int64_t j = 0; j < h_; ++j) sum[j] += part_[k * h_ + j];
    }
    if (cur >= 0) write(cur, sum.data());
  }

 private:
  void flush(Run& run, int64_t blk, bool last) {
    if (run.first || last) {  // may be shared with a neighbouring block: keep it as a partial
      const int64_t k = 2 * blk + (run.first ? 0 : 1);
      part_id_[k] = run.id;
      std::copy(run.acc.begin(), run.acc.end(), part_.begin() + k * h_);
    } else {  // a run inside the block: its segment has no other rows
      write(run.id, run.acc.data());
    }
    run.first = false;
    std::fill(run.acc.begin(), run.acc.end(), 0.f);
  }
  void write(int32_t id, const float* v) {
    O* __restrict o = out_ + static_cast<int64_t>(id) * h_;
#pragma omp simd
    for (int64_t j = 0; j < h_; ++j) store(o, j, v[j]);
  }

  O* out_;
  const int32_t* ids_;
  int64_t h_, rows_;
  std::vector<float> part_;
  std::vector<int32_t> part_id_;
};

// ------------------------------------------------------------------------------------------------ forward
// x = bias + sum(parts) + sum_k tables[k][rows[k]];  xhat = (x - mean) * inv;  h = ReLU(xhat * scale + offset)
// outputs: h, acc_next (= acc + h, or h), xhat (T), inv ([E, 1] float)
template <typename T>
class EdgeLnForward : public OpKernel {
 public:
  explicit EdgeLnForward(OpKernelConstruction* c) : OpKernel(c) { OP_REQUIRES_OK(c, c->GetAttr("eps", &eps_)); }

  void Compute(OpKernelContext* ctx) override {
    OpInputList parts, tables, rows, acc, sum_ids;
    OP_REQUIRES_OK(ctx, ctx->input_list("parts", &parts));
    OP_REQUIRES_OK(ctx, ctx->input_list("tables", &tables));
    OP_REQUIRES_OK(ctx, ctx->input_list("rows", &rows));
    OP_REQUIRES_OK(ctx, ctx->input_list("acc", &acc));
    OP_REQUIRES_OK(ctx, ctx->input_list("sum_ids", &sum_ids));
    const Tensor *bias_t, *scale_t, *offset_t, *num_segments;
    OP_REQUIRES_OK(ctx, ctx->input("bias", &bias_t));
    OP_REQUIRES_OK(ctx, ctx->input("scale", &scale_t));
    OP_REQUIRES_OK(ctx, ctx->input("offset", &offset_t));
    OP_REQUIRES_OK(ctx, ctx->input("num_segments", &num_segments));
    const Tensor &bias = *bias_t, &scale = *scale_t, &offset = *offset_t;
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
    int64_t segments;
    OP_REQUIRES_OK(ctx, check_sum_ids(sum_ids, *num_segments, e, &segments));

    Tensor *out_h, *out_acc, *out_xhat, *out_inv, *out_sums;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({e, h}), &out_h));
    if (acc.size() > 0) {
      OP_REQUIRES_OK(ctx, ctx->allocate_output(1, TensorShape({e, h}), &out_acc));
    } else {
      ctx->set_output(1, *out_h);  // acc_next is h itself
      out_acc = nullptr;
    }
    OP_REQUIRES_OK(ctx, ctx->allocate_output(2, TensorShape({e, h}), &out_xhat));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(3, TensorShape({e, 1}), &out_inv));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(4, TensorShape({segments, h}), &out_sums));
    SortedRowSum<T> sums(sum_ids.size() ? out_sums : nullptr, sum_ids.size() ? &sum_ids[0] : nullptr, h);

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

    for_blocks(ctx, e, h * (np + nt + 6), [&](int64_t blk, int64_t r0, int64_t r1) {
      std::vector<float> xbuf(2 * h);
      float *__restrict x = xbuf.data(), *__restrict y = x + h;
      auto run = sums.start();
      for (int64_t r = r0; r < r1; ++r) {
        const int64_t base = r * h;
        for (int64_t j = 0; j < h; ++j) x[j] = b[j];
        for (int64_t k = 0; k < np; ++k) add_row(x, p_ptr[k] + base, h);
        for (int64_t k = 0; k < nt; ++k) add_row(x, t_ptr[k] + static_cast<int64_t>(r_ptr[k][r]) * h, h);
        if (r + kPrefetch < r1) prefetch_rows(t_ptr, r_ptr, r + kPrefetch, h);
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
          y[j] = rounded(std::max(xh * g[j] + o[j], 0.f), oh);  // h as stored: the sums and acc add that
          store(oh, j, y[j]);
        }
        if (ya) {
          T* __restrict oa = ya + base;
          const T* __restrict ia = acc_ptr + base;
#pragma omp simd
          for (int64_t j = 0; j < h; ++j) store(oa, j, load(ia, j) + y[j]);
        }
        if (sums.active()) sums.add(run, blk, r, y);
      }
      if (sums.active()) sums.end(run, blk);
    });
    sums.finish();
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
    OpInputList dense, gsrc, gids, dz_next, sum_ids;
    OP_REQUIRES_OK(ctx, ctx->input_list("dense", &dense));
    OP_REQUIRES_OK(ctx, ctx->input_list("gsrc", &gsrc));
    OP_REQUIRES_OK(ctx, ctx->input_list("gids", &gids));
    OP_REQUIRES_OK(ctx, ctx->input_list("dz_next", &dz_next));
    OP_REQUIRES_OK(ctx, ctx->input_list("sum_ids", &sum_ids));
    const Tensor *xhat_t, *inv_t, *scale_t, *offset_t, *num_segments;
    OP_REQUIRES_OK(ctx, ctx->input("xhat", &xhat_t));
    OP_REQUIRES_OK(ctx, ctx->input("inv", &inv_t));
    OP_REQUIRES_OK(ctx, ctx->input("scale", &scale_t));
    OP_REQUIRES_OK(ctx, ctx->input("offset", &offset_t));
    OP_REQUIRES_OK(ctx, ctx->input("num_segments", &num_segments));
    const Tensor &xhat = *xhat_t, &inv = *inv_t, &scale = *scale_t, &offset = *offset_t;
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
    int64_t segments;
    OP_REQUIRES_OK(ctx, check_sum_ids(sum_ids, *num_segments, e, &segments));

    Tensor *o_dx32, *o_dxt, *o_dz, *o_dscale, *o_doffset, *o_dbias, *o_dsum;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({want_dx32_ ? e : 0, h}), &o_dx32));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, TensorShape({want_dxt_ ? e : 0, h}), &o_dxt));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(2, TensorShape({e, h}), &o_dz));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(3, TensorShape({h}), &o_dscale));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(4, TensorShape({h}), &o_doffset));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(5, TensorShape({h}), &o_dbias));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(6, TensorShape({segments, h}), &o_dsum));
    SortedRowSum<float> dsum(sum_ids.size() ? o_dsum : nullptr, sum_ids.size() ? &sum_ids[0] : nullptr, h);

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
      auto run = dsum.start();
      for (int64_t r = r0; r < r1; ++r) {
        const int64_t base = r * h;
        for (int64_t j = 0; j < h; ++j) dy[j] = 0.f;
        for (int64_t k = 0; k < nd; ++k) add_row(dy, d_ptr[k] + base, h);
        for (int64_t k = 0; k < ns; ++k) add_row(dy, s_ptr[k] + static_cast<int64_t>(i_ptr[k][r]) * h, h);
        if (r + kPrefetch < r1) prefetch_rows(s_ptr, i_ptr, r + kPrefetch, h);
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
        if (dsum.active()) dsum.add(run, blk, r, dy);
      }
      if (dsum.active()) dsum.end(run, blk);
    });
    dsum.finish();
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
    .Attr("n_sum: int >= 0")
    .Attr("eps: float")
    .Input("parts: n_parts * T")
    .Input("tables: n_tables * T")
    .Input("rows: n_tables * int32")
    .Input("acc: n_acc * T")
    .Input("sum_ids: n_sum * int32")
    .Input("num_segments: int32")
    .Input("bias: float")
    .Input("scale: float")
    .Input("offset: float")
    .Output("h: T")
    .Output("acc_next: T")
    .Output("xhat: T")
    .Output("inv: float")
    .Output("sums: T")
    .SetShapeFn([](InferenceContext* c) {
      ShapeHandle s;
      TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 2, &s));
      for (int i = 0; i < 3; ++i) c->set_output(i, s);
      c->set_output(3, c->Matrix(c->Dim(s, 0), 1));
      c->set_output(4, c->Matrix(c->UnknownDim(), c->Dim(s, 1)));
      return tensorflow::OkStatus();
    });

REGISTER_OP("TrkxEdgeLnBackward")
    .Attr("T: {float, bfloat16}")
    .Attr("n_dense: int >= 0")
    .Attr("n_gather: int >= 0")
    .Attr("n_dz: int >= 0")
    .Attr("n_sum: int >= 0")
    .Attr("want_dx32: bool")
    .Attr("want_dxt: bool")
    .Input("dense: n_dense * T")
    .Input("gsrc: n_gather * T")
    .Input("gids: n_gather * int32")
    .Input("dz_next: n_dz * T")
    .Input("sum_ids: n_sum * int32")
    .Input("num_segments: int32")
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
    .Output("dsum: float")
    .SetShapeFn([](InferenceContext* c) {
      ShapeHandle xhat;
      TF_RETURN_IF_ERROR(c->WithRank(c->input(c->num_inputs() - 4), 2, &xhat));
      c->set_output(6, c->Matrix(c->UnknownDim(), c->Dim(xhat, 1)));
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
