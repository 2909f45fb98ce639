"""The adapter's machinery: named terms, the step context, shared labellers, phases, the BN
policy, optimiser phases declared by terms and backward passes per term group."""

import pytest
import torch
import torch.nn as nn
from mmengine.optim import OptimWrapper

from tests.conftest import toy_batch
from uda.engine import AdapterOptimWrapperConstructor
from uda.methods import Labeller, PseudoLabels, StepContext, Term
from uda.methods.term import DerivedLabeller
from uda.registry import LABELLERS, MODELS, TERMS


def _adapter(terms, **kwargs):
    cfg = dict(
        type='Adapter',
        segmentor=dict(type='ToySegmentor'),
        data_preprocessor=dict(type='SegDataPreprocessor', size_divisor=1),
        terms=terms,
    )
    return MODELS.build({**cfg, **kwargs})


def _sgd(model, lr=0.1):
    return OptimWrapper(torch.optim.SGD(model.student.parameters(), lr=lr))


# ------------------------------------------------------------------ named terms
def test_terms_are_held_by_name_and_a_list_is_refused():
    model = _adapter(dict(src=dict(type='SourceCE'), ent=dict(type='MinEnt', aux_weight=0)))
    assert list(model.terms) == ['src', 'ent']
    assert model.terms['ent'].term_name == 'ent'
    with pytest.raises(TypeError, match=r'terms=dict\(src=dict'):
        _adapter([dict(type='SourceCE')])


def test_legacy_positional_checkpoint_is_refused_with_the_fix():
    model = _adapter(dict(src=dict(type='SourceCE')))
    state = dict(model.state_dict())
    state['terms.0.class_prior'] = torch.zeros(19)
    with pytest.raises(KeyError, match='upgrade_checkpoint.py'):
        model.load_state_dict(state)


# ------------------------------------------------------------------ step context
@TERMS.register_module(force=True)
class _Probe(Term):
    """Reads the context like a consumer of a shared labeller (test only)."""

    def __init__(self, labeller='conf', weight=1.0):
        super().__init__(weight)
        self.labeller = labeller
        self.seen: list = []

    def forward(self, ctx: StepContext):
        pl = ctx.pseudo_labels('target', self.labeller)
        self.seen.append(pl)
        logits = ctx.student('target')['logits']
        ce = nn.functional.cross_entropy(
            logits, pl.labels, ignore_index=ctx.ignore_index, reduction='none'
        )
        return {'loss_probe': self.weight * (ce * pl.weight).mean()}


def test_two_terms_sharing_a_labeller_run_the_teacher_once():
    model = _adapter(
        dict(
            src=dict(type='SourceCE'),
            a=dict(type='_Probe'),
            b=dict(type='_Probe'),
        ),
        teacher=dict(start_iter=0),
        labellers=dict(conf=dict(type='ConfidenceLabeller', threshold=0.0)),
    )
    model.teacher.init_from(model.student)
    calls = []
    model.teacher.net.register_forward_hook(lambda *a: calls.append(1))
    log = model.train_step(toy_batch(), _sgd(model))
    assert len(calls) == 1
    assert model.terms['a'].seen[0] is model.terms['b'].seen[0]
    assert {'a.loss_probe', 'b.loss_probe', 'src.loss_ce'} <= set(log)


def test_context_labels_image_labels_and_normalisation():
    model = _adapter(dict(src=dict(type='SourceCE')))
    batch = toy_batch(labelled=('source',))
    batch['target']['data_samples'][0]['img_labels'] = [3, 7]
    batch['target']['data_samples'][1]['img_labels'] = []
    data = model.data_preprocessor(batch, True)
    ctx = model.make_context(data['inputs'], data['data_samples'], iteration=4)
    assert ctx.iter == 4 and ctx.labels('source').shape == (2, 32, 32)
    img = ctx.image_labels('target')
    assert img.shape == (2, 19) and img[0].nonzero().flatten().tolist() == [3, 7]
    assert img[1].sum() == 0
    derived = ctx.image_labels('source')  # from the pixel labels
    gt = data['data_samples']['source'][0]['gt_sem_seg']
    assert derived[0].nonzero().flatten().tolist() == sorted(set(gt[gt != 255].tolist()))
    x = ctx.inputs('source')
    assert torch.allclose(ctx.normalize(ctx.denormalize(x)), x, atol=1e-5)
    with pytest.raises(KeyError, match="branch 'nope'"):
        ctx.inputs('nope')
    batch['target']['data_samples'][0]['img_labels'] = [25]
    data = model.data_preprocessor(batch, True)
    with pytest.raises(ValueError, match='outside 0..18'):
        model.make_context(data['inputs'], data['data_samples']).image_labels('target')


def test_student_forward_is_cached_per_branch():
    model = _adapter(dict(src=dict(type='SourceCE')))
    data = model.data_preprocessor(toy_batch(), True)
    ctx = model.make_context(data['inputs'], data['data_samples'])
    assert ctx.student('source') is ctx.student('source')
    assert ctx.counts['student'] == 1


def test_quality_labeller_weight_is_the_confident_share():
    model = _adapter(
        dict(src=dict(type='SourceCE')),
        teacher=dict(),
        labellers=dict(q=dict(type='QualityLabeller', threshold=0.5, ignore_top=2)),
    )
    model.teacher.init_from(model.student)
    with torch.no_grad():  # a teacher that is sure (p = 1) of class 0 on the left half only
        model.teacher.net.classifier.weight.zero_()
        model.teacher.net.classifier.bias.zero_()
    data = model.data_preprocessor(toy_batch(), True)
    ctx = model.make_context(data['inputs'], data['data_samples'])
    probs = torch.full((2, 19, 32, 32), 1.0 / 19)
    probs[:, :, :, :16] = 0
    probs[:, 0, :, :16] = 1
    model.labellers['q'].predict = lambda ctx, x: probs
    pl = ctx.pseudo_labels('target', 'q')
    assert isinstance(pl, PseudoLabels)
    assert torch.allclose(pl.extras['quality'], torch.tensor([0.5, 0.5]))
    assert (pl.weight[:, :2] == 0).all() and torch.allclose(pl.weight[:, 2:], torch.tensor(0.5))


# ------------------------------------------------------------------ phases
def test_terms_run_only_inside_their_phase():
    model = _adapter(
        dict(
            src=dict(type='SourceCE'),
            ent=dict(type='MinEnt', aux_weight=0, start_iter=2, end_iter=4),
        )
    )
    data = model.data_preprocessor(toy_batch(), True)
    seen = {}
    for it in range(6):
        with torch.no_grad():
            ctx = model.make_context(data['inputs'], data['data_samples'], iteration=it)
            seen[it] = 'ent.loss_ent' in model.run_terms(ctx)
    assert seen == {0: False, 1: False, 2: True, 3: True, 4: False, 5: False}
    with pytest.raises(ValueError, match='end_iter'):
        _adapter(dict(src=dict(type='SourceCE', start_iter=3, end_iter=3)))


def test_teacher_terms_start_with_the_teacher():
    model = _adapter(
        dict(src=dict(type='SourceCE'), sac=dict(type='SACSelfTraining')),
        teacher=dict(start_iter=7),
        labellers=dict(sac=dict(type='SACLabeller')),
    )
    assert model.phases == {'src': (0, None), 'sac': (7, None)}


# ------------------------------------------------------------------ BN policy
def _zero_target(batch):
    for img in batch['target']['inputs']:
        img.zero_()  # target statistics far from the source ones
    return batch


def _target_mean(model, batch):
    data = model.data_preprocessor(batch, True)
    with torch.no_grad():
        return model.student.conv(data['inputs']['target']).mean((0, 2, 3))


@pytest.mark.parametrize(
    'terms',
    [
        dict(src=dict(type='SourceCE')),  # the adapter forwards target
        dict(src=dict(type='SourceCE'), ent=dict(type='MinEnt', weight=1.0, aux_weight=0)),
    ],
)
def test_target_only_statistics_are_an_ema_of_target_batches(terms):
    """Source forwards never enter the running statistics, whether a term forwards the target
    branch (MinEnt) or the adapter does (ABN)."""
    torch.manual_seed(0)
    model = _adapter(terms, bn_policy='target_only')
    batch = _zero_target(toy_batch(seed=0))
    wrapper = _sgd(model, lr=0.0)  # weights fixed
    for _ in range(30):
        model.train_step(batch, wrapper)
    expected = (1 - 0.9**30) * _target_mean(model, batch)  # momentum 0.1, from 0
    assert torch.allclose(model.student.bn.running_mean, expected, atol=1e-5)
    assert model.student.bn.momentum == 0.1  # restored after each step


def test_train_policy_mixes_source_in():
    torch.manual_seed(0)
    model = _adapter(dict(src=dict(type='SourceCE')), bn_policy='train')
    batch = _zero_target(toy_batch(seed=0))
    for _ in range(30):
        model.train_step(batch, _sgd(model, lr=0.0))
    expected = (1 - 0.9**30) * _target_mean(model, batch)
    assert not torch.allclose(model.student.bn.running_mean, expected, atol=1e-2)


@pytest.mark.parametrize('mode,training', [('frozen_stats', True), ('eval', False)])
def test_frozen_policies_keep_running_statistics(mode, training):
    model = _adapter(dict(src=dict(type='SourceCE')), bn_policy=mode)
    model.train()
    bn = model.student.bn
    seen = []
    bn.register_forward_pre_hook(lambda m, i: seen.append(m.training))
    stats = bn.running_mean.clone()
    model.train_step(toy_batch(), _sgd(model))
    assert torch.equal(bn.running_mean, stats) and seen == [training]
    assert bn.training and bn.momentum == 0.1  # restored after the step


def test_bn_policy_phases_switch_at_their_start():
    model = _adapter(
        dict(src=dict(type='SourceCE')),
        bn_policy=[dict(mode='target_only'), dict(mode='eval', start_iter=5)],
    )
    assert model.bn_mode(4)['mode'] == 'target_only' and model.bn_mode(5)['mode'] == 'eval'
    with pytest.raises(ValueError, match='bn_policy'):
        _adapter(dict(src=dict(type='SourceCE')), bn_policy='frozen')


# ------------------------------------------------------------------ optimiser phases
@TERMS.register_module(force=True)
class _HeadTerm(Term):
    """Owns a head trained with the student and a critic trained in its own phase (test)."""

    def __init__(self, weight=1.0):
        super().__init__(weight)
        self.head = nn.Linear(19, 3)
        self.critic = nn.Linear(19, 1)
        self._cache = None

    def optimised_modules(self):
        return {'student': self.head, 'critics': self.critic}

    def forward(self, ctx):
        pooled = ctx.student('target')['logits'].mean((2, 3))
        self._cache = pooled.detach()
        return {'head.loss': self.head(pooled).pow(2).mean() + self.critic(pooled).mean()}

    def phase_loss(self, phase, ctx):
        assert phase == 'critics'
        return {'critic.loss': self.critic(self._cache).pow(2).mean()}


def test_declared_optimisers_build_and_step_their_phases():
    model = _adapter(dict(src=dict(type='SourceCE'), h=dict(type='_HeadTerm')))
    with pytest.raises(TypeError, match='critics=dict'):
        model.train_step(toy_batch(), _sgd(model))
    with pytest.raises(KeyError, match='optim_wrapper.critics'):
        AdapterOptimWrapperConstructor(
            dict(student=dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=0.1)))
        )(model)
    wrappers = AdapterOptimWrapperConstructor(
        dict(
            student=dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=0.1)),
            critics=dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=0.5)),
        )
    )(model)
    head_ids = {id(p) for p in model.terms['h'].head.parameters()}
    student_ids = {id(p) for g in wrappers['student'].optimizer.param_groups for p in g['params']}
    assert head_ids <= student_ids
    critic = model.terms['h'].critic
    assert [p for g in wrappers['critics'].optimizer.param_groups for p in g['params']] == list(
        critic.parameters()
    )
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    # The critic's student-phase loss must not move it: it is frozen in that phase.
    critic_w = critic.weight.detach().clone()
    log = model.train_step(toy_batch(), wrappers)
    assert {'h.head.loss', 'h.critic.loss', 'src.loss_ce'} <= set(log)
    for n, p in model.named_parameters():
        assert not torch.equal(p, before[n]), f'{n} did not train'
    # The critic moved by its own phase only: 0.5 * d/dw mean(critic(x)^2), x the cache.
    x = model.terms['h']._cache
    w = critic_w.clone().requires_grad_(True)
    b = before['terms.h.critic.bias'].clone().requires_grad_(True)
    ((x @ w.t() + b) ** 2).mean().backward()
    assert torch.allclose(critic.weight, critic_w - 0.5 * w.grad, atol=1e-6)


# ------------------------------------------------------------------ backward groups
def test_backward_per_term_group_gives_the_single_backward_gradients():
    terms = dict(src=dict(type='SourceCE'), ent=dict(type='MinEnt', weight=1.0, aux_weight=0))
    grads = {}
    for groups in (None, [['src'], ['ent']]):
        torch.manual_seed(0)
        model = _adapter(terms, backward_groups=groups)
        captured = {}
        wrapper = _sgd(model, lr=0.0)
        orig_step = wrapper.step

        def step(*a, _orig=orig_step, _model=model, _captured=captured, **k):
            _captured.update({n: p.grad.clone() for n, p in _model.student.named_parameters()})
            return _orig(*a, **k)

        wrapper.step = step
        model.train_step(toy_batch(seed=3), wrapper)
        assert wrapper._inner_count == 1  # one step, however many backward passes
        grads[str(groups)] = captured
    single, grouped = grads['None'], grads["[['src'], ['ent']]"]
    for n in single:
        assert torch.allclose(single[n], grouped[n], atol=1e-6), n
    with pytest.raises(ValueError, match='missing'):
        _adapter(terms, backward_groups=[['src']])


def test_channels_last_option_trains_and_keeps_the_format():
    torch.manual_seed(0)
    terms = dict(src=dict(type='SourceCE'), sac=dict(type='SACSelfTraining'))
    model = _adapter(
        terms,
        labellers=dict(sac=dict(type='SACLabeller', num_images=1, num_views=2)),
        channels_last=True,
    )
    model.teacher.init_from(model.student)
    weights = [model.student.conv.weight, model.teacher.net.conv.weight]
    for w in weights:
        assert w.is_contiguous(memory_format=torch.channels_last)
        assert not w.is_contiguous()
    log_vars = model.train_step(toy_batch(), _sgd(model))
    assert torch.isfinite(log_vars['loss'])
    model.teacher.update(model.student)
    model.load_state_dict(model.state_dict())
    for w in (model.student.conv.weight, model.teacher.net.conv.weight):
        assert w.is_contiguous(memory_format=torch.channels_last), 'format lost'


def test_torch_compile_option_keeps_parameter_names():
    plain = _adapter(dict(src=dict(type='SourceCE')), teacher=dict(momentum=0.9))
    compiled = _adapter(
        dict(src=dict(type='SourceCE')), teacher=dict(momentum=0.9), torch_compile=True
    )
    assert compiled.student._compiled_call_impl is not None
    assert compiled.teacher.net._compiled_call_impl is not None
    assert plain.student._compiled_call_impl is None
    assert list(compiled.state_dict()) == list(plain.state_dict())
    with pytest.raises(TypeError, match='torch_compile'):
        _adapter(dict(src=dict(type='SourceCE')), torch_compile='yes')


# ------------------------------------------------------------------ labeller arguments
def test_start_iter_is_derived_from_the_labellers_a_term_names_and_those_they_wrap():
    """ClassMix names a derived labeller (ImageLabelFilter) that wraps a teacher labeller:
    the adapter builds the teacher and starts the term with it; with a student labeller the
    term starts at 0 and no teacher is built."""
    labellers = dict(
        quality=dict(type='QualityLabeller'),
        filtered=dict(type='ImageLabelFilter', labeller='quality'),
    )
    model = _adapter(
        dict(src=dict(type='SourceCE'), mix=dict(type='ClassMix', labeller='filtered')),
        labellers=labellers,
        teacher=dict(start_iter=7),
    )
    assert model.terms['mix'].needs_teacher and model.phases['mix'] == (7, None)
    labellers['quality'] = dict(type='QualityLabeller', source='student')
    model = _adapter(
        dict(src=dict(type='SourceCE'), mix=dict(type='ClassMix', labeller='filtered')),
        labellers=labellers,
    )
    assert model.teacher is None and model.phases['mix'] == (0, None)


def test_a_missing_or_cyclic_labeller_is_an_error_when_the_adapter_is_built():
    terms = dict(src=dict(type='SourceCE'), mix=dict(type='ClassMix', labeller='nope'))
    with pytest.raises(KeyError, match='model.labellers.nope'):
        _adapter(terms)
    cyclic = dict(
        a=dict(type='ImageLabelFilter', labeller='b'), b=dict(type='ImageLabelFilter', labeller='a')
    )
    with pytest.raises(ValueError, match='cycle'):
        _adapter(dict(src=dict(type='SourceCE')), labellers=cyclic)


@TERMS.register_module(force=True)
class _Undeclared(Term):
    """Declares a labeller argument it does not keep (test only)."""

    labeller_args = {'labeller': dict(type='ConfidenceLabeller')}

    def __init__(self, labeller='conf', weight=1.0):
        super().__init__(weight)
        self.name_of_labeller = labeller


def test_a_declared_labeller_argument_must_be_kept_under_its_name():
    with pytest.raises(TypeError, match='self.labeller'):
        _adapter(dict(src=dict(type='SourceCE'), u=dict(type='_Undeclared')))


# ------------------------------------------------------------------ labeller contract
def _context(model):
    data = model.data_preprocessor(toy_batch(), True)
    return model.make_context(data['inputs'], data['data_samples'])


@LABELLERS.register_module(force=True)
class _BadShape(Labeller):
    """Gives a weight that is not [N, H, W] (test only)."""

    def forward(self, ctx, branch):
        x = ctx.inputs(branch)
        labels = torch.zeros(x.shape[0], *x.shape[-2:], dtype=torch.long)
        return PseudoLabels(labels, torch.ones(x.shape[0], 1, *x.shape[-2:]))


@LABELLERS.register_module(force=True)
class _KeepHalf(DerivedLabeller):
    """Halves the wrapped labeller's weights (test only)."""

    labeller_args = {'labeller': dict(type='ConfidenceLabeller')}

    def derive(self, ctx, branch, pl):
        return PseudoLabels(pl.labels, pl.weight / 2, probs=pl.probs, valid=pl.valid)


def test_pseudo_labels_are_checked_against_their_documented_shapes():
    model = _adapter(dict(src=dict(type='SourceCE')), labellers=dict(bad=dict(type='_BadShape')))
    ctx = _context(model)
    with pytest.raises(ValueError, match=r"Labeller 'bad' on branch 'target'.*weight"):
        ctx.pseudo_labels('target', 'bad')


def test_a_derived_labeller_reads_the_wrapped_one_once_and_follows_its_teacher():
    labellers = dict(
        conf=dict(type='ConfidenceLabeller', threshold=0.0),
        halved=dict(type='_KeepHalf', labeller='conf'),
    )
    model = _adapter(dict(src=dict(type='SourceCE')), labellers=labellers)
    assert model.teacher is not None and not model.labeller('halved').needs_teacher
    assert model._labeller_teachers('halved') == {'teacher'}
    model.teacher.init_from(model.student)
    ctx = _context(model)
    half, full = ctx.pseudo_labels('target', 'halved'), ctx.pseudo_labels('target', 'conf')
    assert torch.equal(half.weight, full.weight / 2) and ctx.counts['teacher'] == 1
    assert half.valid.dtype == torch.bool and half.probs.shape[1] == model.num_classes
    with pytest.raises(TypeError, match='reads no network'):
        model.labeller('halved').predict(ctx, ctx.inputs('target'))


# ------------------------------------------------------------------ teacher memory
def test_the_adapters_teacher_shares_the_students_frozen_parameters_by_default():
    """A frozen part of the student (train_only: the BN affine trains) is one tensor for
    student and teacher; trainable parameters are the teacher's own EMA copies."""
    seg = dict(type='ToySegmentor', train_only=dict(norm=True))
    model = _adapter(dict(src=dict(type='SourceCE')), segmentor=seg, teacher=dict(momentum=0.5))
    student, teacher = model.student, model.teacher
    assert teacher.net.conv.weight is student.conv.weight
    assert teacher.net.classifier.bias is student.classifier.bias
    assert teacher.net.bn.weight is not student.bn.weight
    assert teacher.shared_frozen == sum(1 for p in student.parameters() if not p.requires_grad)
    teacher.init_from(student)
    model.train_step(toy_batch(), _sgd(model))
    teacher.update(student)
    assert torch.allclose(teacher.net.bn.weight, 0.5 * (student.bn.weight + 1.0))
    copied = _adapter(
        dict(src=dict(type='SourceCE')), segmentor=seg, teacher=dict(share_frozen=False)
    )
    assert copied.teacher.net.conv.weight is not copied.student.conv.weight


def _two_teacher_adapter(**kw):
    """SAC-style default teacher for ``sac`` + a named ``dacs`` teacher for ClassMix."""
    return MODELS.build(
        dict(
            type='Adapter',
            segmentor=dict(type='ToySegmentor'),
            data_preprocessor=dict(type='SegDataPreprocessor', size_divisor=1),
            teacher=dict(momentum=0.99, interval=2, start_iter=2),
            teachers=kw.pop('teachers', dict(dacs=dict(momentum=0.5, interval=1, start_iter=4))),
            labellers=dict(
                conf=dict(type='ConfidenceLabeller', threshold=0.0),
                quality=dict(type='QualityLabeller', source=kw.pop('source', 'teachers.dacs')),
            ),
            terms=dict(
                src=dict(type='SourceCE'),
                ws=dict(type='WeakStrongConsistency', labeller='conf'),
                mix=dict(type='ClassMix', labeller='quality'),
            ),
        )
    )


def test_named_teachers_keep_their_settings_schedule_their_terms_and_are_read_by_name():
    model = _two_teacher_adapter()
    dacs = model.teachers['dacs']
    assert list(model.momentum_teachers()) == ['teacher', 'teachers.dacs']
    assert (dacs.momentum, dacs.interval, dacs.start_iter) == (0.5, 1, 4)
    # Each term starts with the teacher its labeller reads.
    assert model.phases == {'src': (0, None), 'ws': (2, None), 'mix': (4, None)}
    keys = model.state_dict()
    assert 'teachers.dacs.net.conv.weight' in keys and 'teachers.dacs.ready' in keys
    ignored = set(model._ddp_params_and_buffers_to_ignore)
    assert {'teacher.net.conv.weight', 'teachers.dacs.net.conv.weight'} <= ignored
    for t in model.momentum_teachers().values():
        t.init_from(model.student)
    data = model.data_preprocessor(toy_batch(), True)
    ctx = model.make_context(data['inputs'], data['data_samples'], 4)
    ctx.pseudo_labels('target', 'quality')
    assert ctx.counts['teachers.dacs'] == 1 and ctx.counts['teacher'] == 0
    with pytest.raises(ValueError, match=r"\['teachers.sac'\].*model.teachers=dict"):
        _two_teacher_adapter(source='teachers.sac')
    with pytest.raises(ValueError, match="'teachers.<name>'"):
        _two_teacher_adapter(source='teachers')
