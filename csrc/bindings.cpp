// Python bindings of the trajectory core: the private module traction._core.
//
// Arguments are NumPy arrays that are already C-contiguous with the right dtype (the wrappers in
// traction/ops/__init__.py convert and check shapes); `noconvert` makes a wrong array an error
// here instead of a silent copy. Outputs are freshly allocated; the GIL is released while the
// kernels run.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>

#include "ops.h"
#include "parallel.h"
#include "rng.h"

namespace py = pybind11;

namespace {

template <typename T>
using CArray = py::array_t<T, py::array::c_style>;

int64_t dim(const py::array& a, int i) { return static_cast<int64_t>(a.shape(i)); }

py::tuple resample(const CArray<float>& x, const CArray<float>& vis, int64_t num_frames) {
  const int64_t n = dim(x, 0), t_in = dim(x, 1), c = dim(x, 2);
  CArray<float> x_out({n, num_frames, c});
  CArray<float> vis_out({n, num_frames});
  {
    py::gil_scoped_release nogil;
    traction::resample(x.data(), vis.data(), n, t_in, c, num_frames, x_out.mutable_data(),
                       vis_out.mutable_data());
  }
  return py::make_tuple(x_out, vis_out);
}

CArray<float> normalize(const CArray<float>& raw, const CArray<float>& hw, bool has_depth,
                        const std::optional<CArray<bool>>& valid) {
  const int64_t b = dim(raw, 0), n = dim(raw, 1), t = dim(raw, 2);
  const bool* valid_ptr = valid ? valid->data() : nullptr;  // None: every point is valid
  CArray<float> out({b, n, t, int64_t{4}});
  {
    py::gil_scoped_release nogil;
    traction::normalize(raw.data(), hw.data(), valid_ptr, b, n, t, has_depth, out.mutable_data());
  }
  return out;
}

py::tuple sample_subset(const CArray<int64_t>& num_valid, int64_t k, uint64_t seed) {
  const int64_t b = dim(num_valid, 0);
  CArray<int64_t> index({b, k});
  CArray<bool> mask({b, k});
  {
    py::gil_scoped_release nogil;
    traction::sample_subset(num_valid.data(), b, k, seed, index.mutable_data(), mask.mutable_data());
  }
  return py::make_tuple(index, mask);
}

py::tuple augment(const CArray<float>& x, const CArray<bool>& valid, const CArray<float>& hw,
                  double crop_prob, double crop_min_scale, double rotate_prob, double rotate_max_deg,
                  double translate_prob, double translate_max, double shift_prob, int64_t shift_max,
                  double jitter_std, uint64_t seed) {
  const int64_t b = dim(x, 0), n = dim(x, 1), t = dim(x, 2);
  const traction::AugmentParams params{crop_prob,      crop_min_scale, rotate_prob,
                                       rotate_max_deg, translate_prob, translate_max,
                                       shift_prob,     shift_max,      jitter_std};
  CArray<float> x_out({b, n, t, int64_t{4}});
  CArray<bool> valid_out({b, n});
  {
    py::gil_scoped_release nogil;
    traction::augment(x.data(), valid.data(), hw.data(), b, n, t, params, seed, x_out.mutable_data(),
                      valid_out.mutable_data());
  }
  return py::make_tuple(x_out, valid_out);
}

CArray<float> lift_depth(const CArray<float>& depth, const CArray<float>& xy, double video_h,
                         double video_w) {
  const int64_t t = dim(depth, 0), hd = dim(depth, 1), wd = dim(depth, 2), n = dim(xy, 0);
  CArray<float> out({n, t});
  {
    py::gil_scoped_release nogil;
    traction::lift_depth(depth.data(), xy.data(), t, hd, wd, n, video_h, video_w, out.mutable_data());
  }
  return out;
}

CArray<float> sample_queries(int64_t num_points, int64_t num_frames, int64_t height, int64_t width,
                             uint64_t seed) {
  CArray<float> out({num_points, int64_t{3}});
  {
    py::gil_scoped_release nogil;
    traction::sample_queries(num_points, num_frames, height, width, seed, out.mutable_data());
  }
  return out;
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "traction's compiled trajectory core; use traction.ops, which checks inputs.";
  m.def("resample", &resample, py::arg("x").noconvert(), py::arg("vis").noconvert(),
        py::arg("num_frames"));
  m.def("normalize", &normalize, py::arg("raw").noconvert(), py::arg("hw").noconvert(),
        py::arg("has_depth"), py::arg("valid").noconvert() = py::none());
  m.def("sample_subset", &sample_subset, py::arg("num_valid").noconvert(), py::arg("k"),
        py::arg("seed"));
  m.def("augment", &augment, py::arg("x").noconvert(), py::arg("valid").noconvert(),
        py::arg("hw").noconvert(), py::arg("crop_prob"), py::arg("crop_min_scale"),
        py::arg("rotate_prob"), py::arg("rotate_max_deg"), py::arg("translate_prob"),
        py::arg("translate_max"), py::arg("shift_prob"), py::arg("shift_max"),
        py::arg("jitter_std"), py::arg("seed"));
  m.def("lift_depth", &lift_depth, py::arg("depth").noconvert(), py::arg("xy").noconvert(),
        py::arg("video_h"), py::arg("video_w"));
  m.def("sample_queries", &sample_queries, py::arg("num_points"), py::arg("num_frames"),
        py::arg("height"), py::arg("width"), py::arg("seed"));
  m.def("rng_uniform", &traction::rng_uniform, py::arg("seed"), py::arg("stream"), py::arg("a"),
        py::arg("b"));
  m.def("rng_normal", &traction::rng_normal, py::arg("seed"), py::arg("stream"), py::arg("a"),
        py::arg("b"));
  m.def("num_threads", &traction::num_threads,
        "Threads a call may use: TRACTION_NUM_THREADS, else the hardware concurrency.");
  py::dict streams;
  streams["SUBSET"] = uint64_t{traction::kSubset};
  streams["QUERY_T"] = uint64_t{traction::kQueryT};
  streams["QUERY_X"] = uint64_t{traction::kQueryX};
  streams["QUERY_Y"] = uint64_t{traction::kQueryY};
  streams["CROP_APPLY"] = uint64_t{traction::kCropApply};
  streams["CROP_SCALE"] = uint64_t{traction::kCropScale};
  streams["CROP_X0"] = uint64_t{traction::kCropX0};
  streams["CROP_Y0"] = uint64_t{traction::kCropY0};
  streams["ROTATE_APPLY"] = uint64_t{traction::kRotateApply};
  streams["ROTATE_ANGLE"] = uint64_t{traction::kRotateAngle};
  streams["TRANSLATE_APPLY"] = uint64_t{traction::kTranslateApply};
  streams["TRANSLATE_DX"] = uint64_t{traction::kTranslateDx};
  streams["TRANSLATE_DY"] = uint64_t{traction::kTranslateDy};
  streams["SHIFT_APPLY"] = uint64_t{traction::kShiftApply};
  streams["SHIFT"] = uint64_t{traction::kShift};
  streams["JITTER"] = uint64_t{traction::kJitter};
  m.attr("STREAMS") = streams;
}
