"""The paper's ablation in miniature: ID0-ID3, DF-GAN, CSA and EMA over seeds on the synthetic bird set.

    python -m tools.ablation                     # 7 variants x 3 seeds -> output/ablation/
    python -m tools.ablation --quick             # id0 + id1, one seed, two epochs: a pipeline check
    python -m tools.ablation --print_commands    # one command per run, for a scheduler; then --table

    variants   the rows: the demo recipe plus each variant's switches (docs/ABLATION.md)
    plan       the shared inputs (data, bird network, DAMSM), the run folders and their state
    runner     runs them (two at a time on two cores), resumes a killed ablation, prints progress
    table      ablation.json, ablation.md and the figures, from the run folders alone
"""
