/* The firmware builds TFLite's reference kernels without ruy's profiler: the one name they use
 * from it, ScopeLabel, is a no-op here (as in a ruy build without RUY_PROFILER). */
#ifndef IOMT_SHIM_RUY_PROFILER_INSTRUMENTATION_H_
#define IOMT_SHIM_RUY_PROFILER_INSTRUMENTATION_H_

namespace ruy {
namespace profiler {

class ScopeLabel {
 public:
  template <typename... Args>
  explicit ScopeLabel(Args...) {}
};

}  // namespace profiler
}  // namespace ruy

#endif  /* IOMT_SHIM_RUY_PROFILER_INSTRUMENTATION_H_ */
