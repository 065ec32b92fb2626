// Bare-metal harness: the board's own libtflm (openmv/libtflm, lib/libtflm-cortex-m7+fp-release.a)
// runs a .tflite found at a fixed address on int8 inputs found at another (mcu/harness.h), as
// OpenMV's ml module does (lib/tflm/tflm_backend.cc: MicroMutableOpResolver<113> with the same ops,
// MicroInterpreter, AllocateTensors, Invoke). Each op's invoke is wrapped so the host can count the
// instructions between two MMIO writes; DebugLog text goes to an MMIO console.
#include <string.h>
#include <utility>

#include "harness.h"
#include "tensorflow/lite/micro/cortex_m_generic/debug_log_callback.h"
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"
#include "tensorflow/lite/micro/micro_op_resolver.h"
#include "tensorflow/lite/schema/schema_generated.h"

using namespace tflite;

#define MMIO32(a) (*(volatile uint32_t*)(a))
#define MMIO8(a) (*(volatile uint8_t*)(a))

static volatile mcu_control* const ctl = (volatile mcu_control*)MCU_CONTROL_ADDR;
typedef MicroMutableOpResolver<113> MicroOpsResolver;

extern "C" void mcu_log(const char* s) {
  while (*s) MMIO8(MCU_MMIO_CONSOLE) = (uint8_t)*s++;
  MMIO8(MCU_MMIO_CONSOLE) = '\n';
}

// The board's list, in its order (openmv/openmv lib/tflm/tflm_backend.cc, v4.6-4.8).
static void init_ops_resolver(MicroOpsResolver* resolver) {
  resolver->AddAbs();
  resolver->AddAdd();
  resolver->AddAddN();
  resolver->AddArgMax();
  resolver->AddArgMin();
  resolver->AddAssignVariable();
  resolver->AddAveragePool2D();
  resolver->AddBatchMatMul();
  resolver->AddBatchToSpaceNd();
  resolver->AddBroadcastArgs();
  resolver->AddBroadcastTo();
  resolver->AddCallOnce();
  resolver->AddCast();
  resolver->AddCeil();
  resolver->AddCircularBuffer();
  resolver->AddConcatenation();
  resolver->AddConv2D();
  resolver->AddCos();
  resolver->AddCumSum();
  resolver->AddDelay();
  resolver->AddDepthToSpace();
  resolver->AddDepthwiseConv2D();
  resolver->AddDequantize();
  resolver->AddDiv();
  resolver->AddElu();
  resolver->AddEmbeddingLookup();
  resolver->AddEnergy();
  resolver->AddEqual();
  resolver->AddExp();
  resolver->AddExpandDims();
  resolver->AddFftAutoScale();
  resolver->AddFill();
  resolver->AddFilterBank();
  resolver->AddFilterBankLog();
  resolver->AddFilterBankSpectralSubtraction();
  resolver->AddFilterBankSquareRoot();
  resolver->AddFloor();
  resolver->AddFloorDiv();
  resolver->AddFloorMod();
  resolver->AddFramer();
  resolver->AddFullyConnected();
  resolver->AddGather();
  resolver->AddGatherNd();
  resolver->AddGreater();
  resolver->AddGreaterEqual();
  resolver->AddHardSwish();
  resolver->AddIf();
  resolver->AddIrfft();
  resolver->AddL2Normalization();
  resolver->AddL2Pool2D();
  resolver->AddLeakyRelu();
  resolver->AddLess();
  resolver->AddLessEqual();
  resolver->AddLog();
  resolver->AddLogSoftmax();
  resolver->AddLogicalAnd();
  resolver->AddLogicalNot();
  resolver->AddLogicalOr();
  resolver->AddLogistic();
  resolver->AddMaxPool2D();
  resolver->AddMaximum();
  resolver->AddMean();
  resolver->AddMinimum();
  resolver->AddMirrorPad();
  resolver->AddMul();
  resolver->AddNeg();
  resolver->AddNotEqual();
  resolver->AddOverlapAdd();
  resolver->AddPCAN();
  resolver->AddPack();
  resolver->AddPad();
  resolver->AddPadV2();
  resolver->AddPrelu();
  resolver->AddQuantize();
  resolver->AddReadVariable();
  resolver->AddReduceMax();
  resolver->AddRelu();
  resolver->AddRelu6();
  resolver->AddReshape();
  resolver->AddResizeBilinear();
  resolver->AddResizeNearestNeighbor();
  resolver->AddRfft();
  resolver->AddRound();
  resolver->AddRsqrt();
  resolver->AddSelectV2();
  resolver->AddShape();
  resolver->AddSin();
  resolver->AddSlice();
  resolver->AddSoftmax();
  resolver->AddSpaceToBatchNd();
  resolver->AddSpaceToDepth();
  resolver->AddSplit();
  resolver->AddSplitV();
  resolver->AddSqrt();
  resolver->AddSquare();
  resolver->AddSquaredDifference();
  resolver->AddSqueeze();
  resolver->AddStacker();
  resolver->AddStridedSlice();
  resolver->AddSub();
  resolver->AddSum();
  resolver->AddSvdf();
  resolver->AddTanh();
  resolver->AddTranspose();
  resolver->AddTransposeConv();
  resolver->AddUnidirectionalSequenceLSTM();
  resolver->AddUnpack();
  resolver->AddVarHandle();
  resolver->AddWhile();
  resolver->AddWindow();
  resolver->AddZerosLike();
}

// Op-boundary markers. The release library is built with TF_LITE_STRIP_ERROR_STRINGS, which also
// compiles out the interpreter's per-op MicroProfiler calls, so the harness's resolver hands out
// copies of the library's registrations whose invoke goes through a trampoline: write the node index
// to OPBEGIN, call the library's invoke, write it to OPEND. A trampoline costs about 10 instructions.
static const int kSlots = 128;
static TfLiteStatus (*g_orig_invoke[kSlots])(TfLiteContext*, TfLiteNode*);
static TFLMRegistration g_wrapped[kSlots];
static int g_used = 0;
static uint32_t g_node = 0;  // node index within one Invoke(); the graph runs nodes in order

template <int I>
static TfLiteStatus trampoline(TfLiteContext* context, TfLiteNode* node) {
  uint32_t n = g_node++;
  MMIO32(MCU_MMIO_OPBEGIN) = n;
  TfLiteStatus s = g_orig_invoke[I](context, node);
  MMIO32(MCU_MMIO_OPEND) = n;
  return s;
}

template <int... I>
static constexpr auto make_table(std::integer_sequence<int, I...>) {
  struct T {
    TfLiteStatus (*f[sizeof...(I)])(TfLiteContext*, TfLiteNode*);
  };
  return T{{&trampoline<I>...}};
}
static const auto kTrampolines = make_table(std::make_integer_sequence<int, kSlots>{});

class MarkingResolver : public MicroOpResolver {
 public:
  explicit MarkingResolver(const MicroOpResolver& inner) : inner_(inner) {}
  const TFLMRegistration* FindOp(BuiltinOperator op) const override { return wrap(inner_.FindOp(op)); }
  const TFLMRegistration* FindOp(const char* op) const override { return wrap(inner_.FindOp(op)); }
  TfLiteBridgeBuiltinParseFunction GetOpDataParser(BuiltinOperator op) const override {
    return inner_.GetOpDataParser(op);
  }

 private:
  static const TFLMRegistration* wrap(const TFLMRegistration* r) {
    if (r == nullptr || r->invoke == nullptr) return r;
    for (int i = 0; i < g_used; i++) {
      if (g_orig_invoke[i] == r->invoke && g_wrapped[i].prepare == r->prepare &&
          g_wrapped[i].init == r->init) return &g_wrapped[i];
    }
    if (g_used == kSlots) return r;  // more distinct kernels than slots: unmarked, still correct
    int i = g_used++;
    g_orig_invoke[i] = r->invoke;
    g_wrapped[i] = *r;
    g_wrapped[i].invoke = kTrampolines.f[i];
    return &g_wrapped[i];
  }
  const MicroOpResolver& inner_;
};

static int finish(uint32_t status) {
  ctl->status = status;
  MMIO32(MCU_MMIO_EXIT) = status;
  return (int)status;
}

static MicroOpsResolver g_resolver;
alignas(MicroInterpreter) static uint8_t g_interpreter_mem[sizeof(MicroInterpreter)];

extern "C" int main(void) {
  RegisterDebugLogCallback(mcu_log);
  ctl->version = 1;
  ctl->done = 0;
  if (ctl->magic != MCU_MAGIC || ctl->arena_size == 0) return finish(MCU_BAD_CONTROL);
  const Model* model = GetModel((const void*)MCU_MODEL_ADDR);
  if (model->version() != TFLITE_SCHEMA_VERSION) {
    mcu_log("Unsupported model schema");
    return finish(MCU_BAD_SCHEMA);
  }
  init_ops_resolver(&g_resolver);
  static MarkingResolver marking(g_resolver);
  MicroInterpreter* interpreter = new (g_interpreter_mem)
      MicroInterpreter(model, marking, (uint8_t*)MCU_ARENA_ADDR, ctl->arena_size);
  if (interpreter->AllocateTensors() != kTfLiteOk) {
    mcu_log("Failed to allocate tensors");
    return finish(MCU_ALLOCATE_FAILED);
  }
  ctl->arena_used = interpreter->arena_used_bytes();
  ctl->n_inputs = interpreter->inputs_size();
  ctl->n_outputs = interpreter->outputs_size();
  ctl->n_ops = model->subgraphs()->Get(0)->operators()->size();
  uint32_t in_bytes = 0, out_bytes = 0;
  for (size_t i = 0; i < interpreter->inputs_size(); i++) in_bytes += interpreter->input(i)->bytes;
  for (size_t i = 0; i < interpreter->outputs_size(); i++) out_bytes += interpreter->output(i)->bytes;
  ctl->input_bytes = in_bytes;
  ctl->output_stride = out_bytes;
  if (ctl->n_samples == 0) return finish(MCU_OK);  // a probe: sizes only
  if (ctl->input_stride != in_bytes) {
    mcu_log("Input size mismatch");
    return finish(MCU_BAD_INPUT_SIZE);
  }
  for (uint32_t s = 0; s < ctl->n_samples; s++) {
    const uint8_t* src = (const uint8_t*)(MCU_INPUT_ADDR + s * in_bytes);
    for (size_t i = 0; i < interpreter->inputs_size(); i++) {
      TfLiteTensor* t = interpreter->input(i);
      memcpy(t->data.raw, src, t->bytes);
      src += t->bytes;
    }
    g_node = 0;
    MMIO32(MCU_MMIO_INVOKE) = s | 0x80000000u;
    TfLiteStatus st = interpreter->Invoke();
    MMIO32(MCU_MMIO_INVOKE) = s;
    if (st != kTfLiteOk) {
      mcu_log("Invoke failed");
      return finish(MCU_INVOKE_FAILED);
    }
    uint8_t* dst = (uint8_t*)(MCU_OUTPUT_ADDR + s * out_bytes);
    for (size_t i = 0; i < interpreter->outputs_size(); i++) {
      TfLiteTensor* t = interpreter->output(i);
      memcpy(dst, t->data.raw, t->bytes);
      dst += t->bytes;
    }
    ctl->done = s + 1;
  }
  return finish(MCU_OK);
}
