/* Convolutional networks for the learned restoration stages: a U-Net (the
 * SIREN paper's denoiser; Ronneberger et al. 2015 with same padding) and a
 * plain stack of convolutions (the paper's CNN motion baseline), as a list of
 * operations over NCHW tensors run through the kernel table. Not a stage: the
 * CNN stages call it.
 *
 * Parameters are one float array: for each convolution in build order, its
 * weights (PyTorch's layout: cout x cin x k x k, or cin x cout x k x k for a
 * transposed one) and then its cout biases. Order of the convolutions:
 *   U-Net, depth D, widths w_l = min(width 2^l, max_width):
 *     levels l = 0 .. D-1 down: `convs` k x k convolutions (in -> w_l, then
 *       w_l -> w_l), each followed by the activation; then 2 x 2 max pooling
 *       below every level but the last;
 *     levels l = D-2 .. 0 up: a 2 x 2 stride 2 transposed convolution w_{l+1}
 *       -> w_l (no activation) and concatenation [skip, up] (2 w_l channels),
 *       or x2 upsampling and concatenation (w_l + w_{l+1} channels, as
 *       CARE); then `convs` convolutions (-> w_l) with the activation;
 *     a 1 x 1 convolution w_0 -> out_ch; with `residual` the input's
 *       channels are added to the output.
 *   Plain: layers[i] of kernels[i] x kernels[i], filters[i] channels, the
 *     activation after every layer but the last.
 * With fourier_mask, the output (before the residual) is low-pass filtered
 * by the radial raised-cosine mask of fnsm (kernels.h, fmask_*) whose
 * cut-off is one more parameter, the last; it starts at 1 (Nyquist).
 * Dropout (rate `dropout`, training only) follows the activation of every
 * level convolution (not the transposed or the output ones); masks are drawn from the seed given to
 * net_forward, so a training step is a function of its inputs. */
#ifndef SS_CNN_NET_H
#define SS_CNN_NET_H

#include <stddef.h>
#include <stdint.h>

#include "kernels.h"

enum { NET_UNET = 1, NET_PLAIN = 2 };
enum { NET_UP_TRANSPOSED = 0, NET_UP_BILINEAR = 1, NET_UP_NEAREST = 2 };
#define NET_MAX_LAYERS 16
#define NET_ARCH_VERSION 1

typedef struct {
    int kind;
    int in_ch, out_ch;
    int kernel;      /* U-Net: odd kernel of the level convolutions */
    int depth;       /* U-Net: levels (1: no pooling) */
    int width;       /* U-Net: filters at the first level */
    int max_width;   /* U-Net: cap on the doubling */
    int convs;       /* U-Net: convolutions per level */
    int up;          /* U-Net: NET_UP_* */
    int residual;    /* output += input (in_ch == out_ch) */
    float slope;     /* leaky ReLU slope; 0: ReLU */
    float dropout;   /* rate in [0, 1) */
    int fourier_mask; /* a Fourier mask on the output with a trainable cut-off */
    float fmask_rolloff; /* its raised-cosine half-width, of Nyquist (0, 0.5] */
    int n_layers;    /* plain */
    int kernels[NET_MAX_LAYERS], filters[NET_MAX_LAYERS];
} net_arch;

/* NULL when the architecture is valid, else what is wrong. */
const char *net_arch_check(const net_arch *a);
size_t net_n_params(const net_arch *a);
/* Plane sides must be multiples of this (2^(depth-1) for a U-Net). */
int net_multiple(const net_arch *a);
/* Pixels of context a plain network's output depends on beyond a plane's
 * edge, and for a U-Net the receptive field's half-width: the margin tiles
 * overlap by to match the whole-plane result far from tile edges. */
int net_halo(const net_arch *a);
/* He initialisation (Kaiming normal, fan_in, the gain of the leaky ReLU) of
 * the weights from seed; biases 0. */
void net_init(const net_arch *a, float *params, uint64_t seed);

typedef struct net net;
/* A network for batches of n planes of h x w (multiples of net_multiple),
 * with its activations and workspaces; flags: NET_TRAIN keeps gradients and
 * dropout masks, NET_BF16 runs the convolutions' products in bfloat16 (see
 * conv_shape); NULL when the shape does not suit the architecture or
 * memory runs out (net_bytes estimates it). */
enum { NET_TRAIN = 1, NET_BF16 = 2 };
net *net_new(const kernels *k, const net_arch *a, int n, int h, int w, unsigned flags);
void net_free(net *t);
size_t net_bytes(const net_arch *a, int n, int h, int w, int train);
/* The input batch (n x in_ch x h x w) to fill before net_forward. */
float *net_input(net *t);
/* Runs the network; the output is n x out_ch x h x w, owned by t. train
 * (for a training network) applies dropout with masks drawn from seed. */
const float *net_forward(net *t, const float *params, int train, uint64_t seed);
/* After net_forward of a training network: the mean squared error against target (n x out_ch x h
 * x w), as torch.nn.MSELoss(), and its gradient with respect to every
 * parameter in grad (overwritten). */
double net_mse_backward(net *t, const float *params, const float *target, float *grad);
/* The convolution method in use ("gemm"), for the metadata. */
const char *net_kernel(const net *t);

#endif
