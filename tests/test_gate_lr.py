"""TRAIN.GENERATOR_GATE_LR / TRAIN.DISCRIMINATOR_GATE_LR: the blocks' zero-initialised residual gates
in an Adam group of their own; 0 keeps the released single group."""
from __future__ import annotations

from miscc.config import cfg
from miscc.train.gan import GANTrainer, gated_param_groups
from model import DownBlock, NetD, NetG, SSACNBlock, residual_gates
from tests.helpers import configure


def test_the_gates_are_the_gamma_of_every_generator_and_discriminator_block():
    g, d = NetG(4, 100, 64), NetD(4, 64)
    assert len(residual_gates(g)) == sum(isinstance(m, SSACNBlock) for m in g.modules()) > 0
    assert len(residual_gates(d)) == sum(isinstance(m, DownBlock) for m in d.modules()) > 0
    assert all(p.shape == (1,) and float(p.detach()) == 0.0 for p in residual_gates(g) + residual_gates(d))


def test_zero_keeps_one_group_in_parameter_order_as_released():
    g = NetG(4, 100, 64)
    groups = gated_param_groups(g, 0.0)
    assert [id(p) for p in groups] == [id(p) for p in g.parameters()]


def test_a_gate_lr_puts_exactly_the_gates_in_a_second_group():
    d = NetD(4, 64)
    rest, gates = gated_param_groups(d, 0.01)
    assert gates["lr"] == 0.01 and "lr" not in rest
    assert {id(p) for p in gates["params"]} == {id(p) for p in residual_gates(d)}
    assert sorted(map(id, rest["params"] + gates["params"])) == sorted(map(id, d.parameters()))


def test_one_training_step_moves_each_gate_by_its_own_learning_rate(tmp_path, synthetic_birds, damsm_files):
    """Adam with beta1 = 0 moves every parameter by about its lr on the first step: the gates by the
    gate lr, everything else by at most the network's lr."""
    configure(tmp_path, synthetic_birds, damsm_files, **{"TRAIN.GENERATOR_GATE_LR": 0.01,
                                                         "TRAIN.DISCRIMINATOR_GATE_LR": 0.02})
    trainer = GANTrainer("main")
    before = {n: p.detach().clone() for n, p in trainer.netG.named_parameters()}
    d_gates = [p.detach().clone() for p in residual_gates(trainer.netD)]
    trainer.step(next(iter(trainer.loader)))
    gate_ids = {id(p) for p in residual_gates(trainer.netG)}
    for name, p in trainer.netG.named_parameters():
        moved = (p.detach() - before[name]).abs().max().item()
        if id(p) in gate_ids:
            assert abs(moved - 0.01) < 1e-4, name
        else:
            assert moved <= cfg.TRAIN.GENERATOR_LR * 1.001, name
    # D takes two Adam steps (hinge, then MA-GP), each at most the gate lr.
    for p, b in zip(residual_gates(trainer.netD), d_gates):
        assert 0.02 * 0.5 < (p.detach() - b).abs().item() <= 2 * 0.02 * 1.001
