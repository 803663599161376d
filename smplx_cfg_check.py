"""SMPLify-X's real cmd_parser.parse_config on copies of cfg_files/fit_smplx.yaml, then its real
prior.create_prior as main.py calls it, after posendf_plugin's register()."""
import sys, warnings
warnings.filterwarnings("ignore")
sys.path.insert(0, "/tmp/integ_scratch/vchoutas+smplify-x/smplifyx")  # as `python smplifyx/main.py`
import torch
import posendf_plugin.integrations.smplifyx as posendf_sx
from cmd_parser import parse_config
from prior import create_prior
posendf_sx.register()
import prior as sx_prior
create_prior = sx_prior.create_prior
for cfg in sys.argv[1:]:
    args = parse_config(["--config", cfg])
    print(cfg, "stages (len data_weights):", len(args["data_weights"]), "body_pose_prior_weights:", args["body_pose_prior_weights"])
    try:
        p = create_prior(prior_type=args.get("body_prior_type"), dtype=torch.float32, **args)
        print("  create_prior ->", p)
    except ValueError as e:
        print("  ValueError:", e)
