"""Train the match model (u by random sampling, m by EM) and store it as a new version."""

from django.core.management.base import BaseCommand, CommandError

from matching import training
from matching.pairs import DEFAULT_WINDOW


class Command(BaseCommand):
    help = (
        "Estimate u from random pairs of live patients and m by EM over blocked pairs (u fixed, "
        "each blocking session without the fields it requires to agree), print the learned "
        "weights and save them as a new match model version: inactive unless --activate."
    )

    def add_arguments(self, parser):
        defaults = training.TrainingOptions()
        parser.add_argument("--seed", type=int, default=defaults.seed, help="Random seed (default 1).")
        parser.add_argument(
            "--u-pairs",
            type=int,
            default=defaults.u_pairs,
            help=f"Random pairs for u ({defaults.u_pairs:,}).",
        )
        parser.add_argument(
            "--u-records",
            type=int,
            default=defaults.u_records,
            help=f"Random patients the random pairs are drawn from ({defaults.u_records:,}).",
        )
        parser.add_argument(
            "--em-pairs",
            type=int,
            default=defaults.em_pairs,
            help=f"Blocked pairs per EM session ({defaults.em_pairs:,}).",
        )
        parser.add_argument("--window", type=int, default=DEFAULT_WINDOW, help="Per-key cap of the pairs.")
        parser.add_argument(
            "--use-estimated-prior",
            action="store_true",
            help="Replace the prior with the one EM's share of matches implies (kept by default).",
        )
        group = parser.add_mutually_exclusive_group()
        group.add_argument("--activate", action="store_true", help="Make the new version the active one.")
        group.add_argument("--dry-run", action="store_true", help="Print the result; save nothing.")

    def handle(self, *args, **opts):
        for name in ("u_pairs", "u_records", "em_pairs", "window"):
            if opts[name] < 1:
                raise CommandError(f"--{name.replace('_', '-')} must be at least 1.")
        if opts["u_records"] < 2:
            raise CommandError("--u-records must be at least 2.")
        options = training.TrainingOptions(
            seed=opts["seed"],
            u_records=opts["u_records"],
            u_pairs=opts["u_pairs"],
            em_pairs=opts["em_pairs"],
            window=opts["window"],
            use_estimated_prior=opts["use_estimated_prior"],
        )
        try:
            result = training.train(options=options, log=self.stdout.write)
        except training.TrainingError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write("")
        self.stdout.write(result.summary())
        estimates = result.stats["prior_estimates"]
        if estimates:
            shown = ", ".join(f"{block} {value:.3g}" for block, value in estimates.items())
            used = "used" if options.use_estimated_prior else "kept the base prior; --use-estimated-prior"
            self.stdout.write(f"Prior implied by EM: {shown} ({used}).")
        self.stdout.write(f"Took {result.stats['seconds']['total']:.1f} s.")
        if opts["dry_run"]:
            self.stdout.write("Dry run: nothing saved.")
            return
        try:
            version = training.save_version(result=result, activate=opts["activate"])
        except training.TrainingError as exc:
            raise CommandError(str(exc)) from exc
        if opts["activate"]:
            self.stdout.write(self.style.SUCCESS(f"Saved match model v{version.version} and activated it."))
        else:
            self.stdout.write(
                f"Saved match model v{version.version}, NOT active (v{result.base_version} stays in use). "
                "Run with --activate to train and switch, or activate it in the admin."
            )
