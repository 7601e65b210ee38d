#pragma once
/// \file
/// Umbrella for running weight streaming on the emulated fabric: the Executor (one wafer: a
/// ModelSpec's forward, backward and update as PE kernels) and DataParallel (several wafers,
/// gradients tree-reduced into one WeightStore). Hosted; brings in <wse/wse.hpp>'s layers.
///
/// It needs the kernels library on the include path (its kernels are
/// kernels/transformer_train.hpp and what that includes): link the CMake target wse::kernels,
/// or pass -I<wse source> (-I<prefix>/include/wse-kernels when installed; pkg-config adds it).
/// single_include/wse/executor.hpp bundles everything, kernels included.
#include "stream/data_parallel.hpp"
#include "stream/executor.hpp"
#include "wse.hpp"
