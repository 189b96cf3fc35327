// SweepStatistics::update_fused_cuda: one chunk's statistics on the GPU, by the kernels in
// statistics_kernel.cu, on the current stream. Nothing here waits for the device.
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "../statistics.h"
#include "latentsweep/statistics_layout.h"
#include "latentsweep/traversal_grid.h"
#include "ops/cuda/kernels.h"
#include "statistics_kernel.h"

namespace latentsweep {

at::Tensor SweepStatistics::update_fused_cuda(const at::Tensor& y, int64_t start) {
  const c10::cuda::CUDAGuard guard(y.device());
  const int64_t rows = y.size(0);
  const int64_t traversals = traversals_touched(start, rows, num_steps_);
  at::Tensor slopes = at::empty({traversals, features_}, y.options());
  at::Tensor partial = at::empty({feature_blocks(features_), rows}, y.options().dtype(at::kDouble));
  at::Tensor row_mean = at::empty({rows}, y.options().dtype(at::kDouble));
  at::Tensor effect = at::empty({rows}, y.options());
  if (rows == 0) return effect;
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream(y.device().index()).stream();
  const auto launch = [&]<typename T>() {
    cuda::launch_statistics(
        cuda::StatisticsChunk<T>{y.const_data_ptr<T>(), previous_.const_data_ptr<T>(), anchor_outputs_.const_data_ptr<T>(),
                                 inv_range_.const_data_ptr<double>(), slope_.const_data_ptr<T>(),
                                 sensitivity_sum_.data_ptr<double>(), dim_effect_sum_.data_ptr<double>(),
                                 slopes.data_ptr<T>(), partial.data_ptr<double>(), row_mean.data_ptr<double>(),
                                 effect.data_ptr<T>(), rows, features_, start, num_dims_, num_steps_,
                                 unit_first_traversal()},
        stream);
  };
  if (y.scalar_type() == at::kDouble) {
    launch.template operator()<double>();
  } else {
    launch.template operator()<float>();
  }
  const char* error = cuda::last_launch_error();
  TORCH_CHECK(error == nullptr, "SweepStatistics: CUDA launch failed: ", error);
  // The running slope goes on into the next chunk when the chunk ends inside a traversal.
  if ((start + rows) % num_steps_ != 0) {
    slope_.copy_(slopes[traversals - 1]);
  } else {
    slope_.zero_();
  }
  return effect;
}

}  // namespace latentsweep
