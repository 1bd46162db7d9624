"""SSA-GAN's library, one sub-package per stage of the pipeline (arrows point down: a package imports
only packages below it, and nothing here imports ``tools/`` or ``bench/``).

    stage                                     sub-package      entry point
    configuration: keys, YAML/flags/--opts,   config/          every entry point
      the common command line, cfg -> objects
    training: loop skeleton, GAN step,        train/           main.py, main_finetune.py, DAMSM.py
      precision, DAMSM pretraining, losses
    watching training: eval set, evaluation,  watch/           (called by train/gan.py every epoch)
      metrics.jsonl + best epoch, grids
    sampling: protocol, jobs, generator,      sample/          main.py --sample / --captions
      grid drawer
    the interactive page                      page/            app.py
    evaluation: one module per metric and     metrics/         IS.py (and watch/)
      the registry that names them
    text: captions, vocabulary, user          text/            (datasets.py, sample/, page/)
      sentences
    a run on disk and in processes: file      run/             (every stage)
      names, atomic writes, checkpoints,
      encoder pair, distributed, seeding,
      progress
    user errors                               errors.py        (every stage)

Below them: ``model.py`` (NetG, NetD), ``DAMSM.py`` (the encoders), ``datasets.py`` (data layout and
batches), ``sync_batchnorm/``. Only entry points, trainers, the sampler, the page and ``config/factory``
read the global ``cfg``; the README's "Repository layout" lists every module.
"""
