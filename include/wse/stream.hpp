#pragma once
/// \file
/// The stream layer: weight streaming for training transformers — model specs and presets,
/// the off-wafer weight store and its optimizers, and the planner. Hosted; it needs neither
/// the emulator nor Highway, so a program that only plans or manages weights includes this.
#include "stream/model.hpp"
#include "stream/optimizer.hpp"
#include "stream/plan.hpp"
#include "stream/store.hpp"
